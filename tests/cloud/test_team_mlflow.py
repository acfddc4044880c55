"""Training end to end in the cloud environment: data on S3, runs and models on a team MLflow
server (SQLite backend, artifacts proxied to S3), the model loaded back by alias."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.geo import cell_centres, cell_ids
from geo_busyness.model.loading import load_model
from geo_busyness.model.predict import predict_busyness
from geo_busyness.schemas import PREDICTION
from geo_busyness.testing import free_port
from tests.cloud.conftest import (
    AWS_ENV,
    BUCKET,
    object_keys,
    s3_client,
    stop,
    wait_for,
)
from tests.cloud.test_cloud_env import fresh_root
from tests.conftest import SMALL_TRAINING, generation_params, make_project_copy, run_kedro

ARTIFACTS_PREFIX = "mlflow-artifacts"


@pytest.fixture(scope="module")
def mlflow_server(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free loopback port; the client never touches S3 for artifacts."""
    port = free_port()
    database = tmp_path_factory.mktemp("mlflow-server") / "tracking.db"
    env = {**os.environ, **AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{database}",
            "--artifacts-destination",
            f"s3://{BUCKET}/{ARTIFACTS_PREFIX}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", process, 180)  # schema migrations take a while on 2 cores
        yield url
    finally:
        stop(process)


def _read_parquet(endpoint: str, key: str) -> pd.DataFrame:
    body = s3_client(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return pd.read_parquet(io.BytesIO(body))


def test_training_on_s3_registers_on_the_team_server(
    cloud_env: str, mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    project = make_project_copy(tmp_path / "project")
    prefix, root = fresh_root()
    params = {**generation_params(), **SMALL_TRAINING, "data_root": root}
    pipelines = [
        "data_generation",
        "data_processing",
        "feature_engineering",
        "modeling",
        "reporting",
    ]
    run_kedro(project, pipelines, params, env="cloud")

    keys = object_keys(cloud_env, prefix)
    for key in (
        "03_primary/clean_events.parquet",
        "05_model_input/count_history.pkl",
        "07_model_output/test_predictions.parquet",
    ):
        assert f"{prefix}/{key}" in keys, f"{key} missing: {sorted(keys)}"
    versioned = {k.rsplit("/", 1)[0] for k in keys if "/06_models/busyness_model/" in k}
    assert len(versioned) == 1, "the model artifact is versioned in the cloud"
    assert any("/08_reporting/modeling/test_metrics.json/" in k for k in keys), "reports too"
    assert not list((project / "data").rglob("*.parquet")), "a dataset was written locally"
    assert not (project / "mlflow.db").exists(), "runs went to a local store"

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    version = client.get_model_version_by_alias("geo-busyness", "challenger")
    artifacts = object_keys(cloud_env, f"{ARTIFACTS_PREFIX}/")
    # The report and the model card are MLflow artifacts, stored by the server on S3.
    assert any(key.endswith("reporting/evaluation_report.json") for key in artifacts), artifacts
    assert any(key.endswith("model_card/model_card.md") for key in artifacts), artifacts

    mlflow.set_tracking_uri(mlflow_server)
    model = load_model(f"models:/geo-busyness/{version.version}")
    expected = _read_parquet(cloud_env, f"{prefix}/07_model_output/test_predictions.parquet")
    lat, lon = cell_centres(cell_ids(expected["h3_cell"].to_numpy()))
    queries = pd.DataFrame(
        {"courier_location_timestamp": expected["hour"], "courier_lat": lat, "courier_lon": lon}
    )
    answers = predict_busyness(model, queries)
    assert answers["h3_cell"].tolist() == expected["h3_cell"].tolist()
    assert np.isfinite(answers[PREDICTION]).all() and (answers[PREDICTION] >= 0).all()
