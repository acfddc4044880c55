"""Issue #15 items 17 and 18: the registered artifact is fingerprinted and verified before it is
unpickled; its pyfunc flavour takes what the server takes and answers with the same columns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.loading import (
    DIGEST_TAG,
    ArtifactIntegrityError,
    artifact_digest,
    fetch_model,
)
from geo_busyness.model.predict import predict_busyness
from geo_busyness.registry import load_version, register_model, resolve_version
from geo_busyness.testing import free_port
from tests.serving.model_fixture import WEEKS, fit_model, synthetic_events

NAME = "geo-busyness-hardening"
URI = f"models:/{NAME}@challenger"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A fresh SQLite MLflow store with one registered version (alias challenger)."""
    root = tmp_path_factory.mktemp("registry")
    previous_uri, previous_cwd = mlflow.get_tracking_uri(), Path.cwd()
    os.chdir(root)
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("hardening")  # an earlier Kedro session's experiment id is not here
    try:
        example = synthetic_events(5, seed=3)[
            ["courier_location_timestamp", "courier_lat", "courier_lon"]
        ]
        example["courier_location_timestamp"] = example[
            "courier_location_timestamp"
        ].dt.tz_localize(None)
        with mlflow.start_run():
            version = register_model(fit_model(), example, NAME, "challenger")
        yield {"root": root, "version": version, "uri": f"sqlite:///{root / 'mlflow.db'}"}
    finally:
        mlflow.set_tracking_uri(previous_uri)
        os.chdir(previous_cwd)


@pytest.fixture(scope="module")
def queries() -> pd.DataFrame:
    events = synthetic_events(40, seed=11)
    return pd.DataFrame(
        {
            "courier_location_timestamp": events["courier_location_timestamp"]
            + pd.Timedelta(weeks=WEEKS),
            "courier_lat": events["courier_lat"],
            "courier_lon": events["courier_lon"],
        }
    )


def _stored_pickle(version: str) -> Path:
    source = mlflow.MlflowClient().get_model_version(NAME, version).source
    model_id = source.split("/")[-1]
    artifact_dir = Path(mlflow.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    return artifact_dir / "model.pkl"


@pytest.mark.slow
def test_registration_records_the_artifacts_sha256(registry, tmp_path):
    tags = resolve_version(NAME, aliases=["challenger"])["tags"]
    model_dir = fetch_model(URI, tmp_path)
    assert tags[DIGEST_TAG] == artifact_digest(model_dir)


@pytest.mark.slow
def test_a_changed_artifact_is_refused_before_it_is_unpickled(registry, tmp_path):
    pickle = _stored_pickle(registry["version"])
    original = pickle.read_bytes()
    try:
        pickle.write_bytes(original + b"\n# tampered")
        with pytest.raises(ArtifactIntegrityError, match="changed after registration"):
            fetch_model(URI, tmp_path / "a")
        with pytest.raises(ArtifactIntegrityError):
            load_version(resolve_version(NAME, aliases=["challenger"]))
    finally:
        pickle.write_bytes(original)
    assert fetch_model(URI, tmp_path / "b").is_dir()


@pytest.mark.slow
def test_pyfunc_takes_what_the_server_takes_and_answers_the_same_columns(
    registry, queries, monkeypatch
):
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    model = mlflow.pyfunc.load_model(URI)
    expected = predict_busyness(fit_model(), queries)
    hours = pd.to_datetime(expected["hour"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    aware = queries  # UTC-aware pandas timestamps: MLflow's signature check refused them
    iso = queries.assign(
        courier_location_timestamp=queries["courier_location_timestamp"].dt.strftime(
            "%Y-%m-%dT%H:%M:%S%z"
        )
    )
    records = iso.to_dict(orient="records")
    for data in (aware, iso, records):
        answer = model.predict(data)
        assert isinstance(answer, pd.DataFrame)
        assert list(answer.columns)[:3] == ["h3_cell", "hour", "predicted_busyness"]
        assert answer["h3_cell"].tolist() == expected["h3_cell"].tolist()
        assert answer["hour"].tolist() == hours
        np.testing.assert_array_equal(
            answer["predicted_busyness"].to_numpy(), expected["predicted_busyness"].to_numpy()
        )
    with pytest.raises(mlflow.exceptions.MlflowException, match="out of range"):
        model.predict(iso.assign(courier_location_timestamp="9999-12-31T23:00:00Z"))


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_the_server(registry, queries):
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry["uri"],
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            URI,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=registry["root"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "mlflow models serve exited"
            time.sleep(1)
        rows = queries.head(5).assign(
            courier_location_timestamp=lambda f: f["courier_location_timestamp"].dt.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        )
        answer = httpx.post(
            f"{url}/invocations",
            json={"dataframe_records": rows.to_dict(orient="records")},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        expected = predict_busyness(fit_model(), queries.head(5))
        assert [row["h3_cell"] for row in predictions] == expected["h3_cell"].tolist()
        assert [row["predicted_busyness"] for row in predictions] == expected[
            "predicted_busyness"
        ].tolist()
        refused = httpx.post(
            f"{url}/invocations",
            json={"dataframe_records": [{**rows.iloc[0].to_dict(), "courier_lat": 95.0}]},
            timeout=60,
        )
        assert refused.status_code == 400, refused.text
        assert "courier_lat" in refused.text
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
