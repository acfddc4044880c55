"""`kedro run --env cloud`: datasets on a real S3 API, and storage faults explained in one line."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DatasetError

from geo_busyness.hooks.storage import StorageError, explain_storage_failure
from geo_busyness.hooks.tracking import MissingTrackingServerError
from geo_busyness.testing import free_port, start_moto
from tests.cloud.conftest import (
    BUCKET,
    object_keys,
    s3_client,
    stop,
    use_endpoint,
)
from tests.conftest import generation_params, inside, make_project_copy, run_kedro

PROCESSING_KEYS = (
    "01_raw/courier_events.csv",
    "01_raw/courier_events_fault_labels.parquet",
    "02_intermediate/quarantine/rejected_events.parquet",
    "03_primary/clean_events.parquet",
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project copy whose cloud runs track into a throw-away SQLite MLflow store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return make_project_copy(tmp_path / "project")


def fresh_root() -> tuple[str, str]:
    """A data root under a prefix no other test uses: (prefix, s3 URL)."""
    prefix = f"runs/{uuid.uuid4().hex[:8]}"
    return prefix, f"s3://{BUCKET}/{prefix}"


def test_data_processing_reads_and_writes_s3(cloud_env: str, project: Path) -> None:
    prefix, root = fresh_root()
    params = {**generation_params(), "data_root": root}
    run_kedro(project, ["data_generation", "data_processing"], params, env="cloud")

    keys = object_keys(cloud_env, prefix)
    for key in PROCESSING_KEYS:
        assert f"{prefix}/{key}" in keys, f"{key} missing from the bucket: {sorted(keys)}"
    # Reports are versioned in the cloud: <name>.json/<version>/<name>.json.
    report_keys = [
        k for k in keys if k.startswith(f"{prefix}/08_reporting/data_quality_report.json/")
    ]
    assert len(report_keys) == 1, sorted(keys)
    assert not any(Path(key).parts[0] == "data" for key in keys)
    assert not (project / "data" / "03_primary" / "clean_events.parquet").exists()

    s3 = s3_client(cloud_env)
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=report_keys[0])["Body"].read())
    clean = pd.read_parquet(
        io.BytesIO(
            s3.get_object(Bucket=BUCKET, Key=f"{prefix}/03_primary/clean_events.parquet")[
                "Body"
            ].read()
        )
    )
    assert len(clean) == report["rows_clean"] > 0
    assert str(clean["courier_location_timestamp"].dt.tz) == "UTC"


def _run_expecting(
    project: Path, error: type[Exception], params: dict, pipelines: list[str]
) -> str:
    with pytest.raises(error) as caught:
        run_kedro(project, pipelines, params, env="cloud")
    return str(caught.value)


def test_missing_input_object_names_dataset_and_url(cloud_env: str, project: Path) -> None:
    _, root = fresh_root()
    message = _run_expecting(project, StorageError, {"data_root": root}, ["data_processing"])
    assert message.startswith(
        f"Could not load dataset 'raw_events' at {root}/01_raw/courier_events.csv"
    )
    assert "nothing is stored there" in message


def test_missing_bucket_is_named(cloud_env: str, project: Path) -> None:
    root = "s3://no-such-bucket-here/geo"
    message = _run_expecting(project, StorageError, {"data_root": root}, ["data_processing"])
    assert f"'raw_events' at {root}/01_raw/courier_events.csv" in message
    assert "the bucket 'no-such-bucket-here' does not exist" in message


def test_unreachable_endpoint_is_named(
    cloud_env: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_endpoint(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    _, root = fresh_root()
    message = _run_expecting(project, StorageError, {"data_root": root}, ["data_processing"])
    assert f"'raw_events' at {root}/01_raw/courier_events.csv" in message
    assert "could not be reached" in message


@pytest.mark.slow  # starts its own moto server
def test_refused_credentials_are_named(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked on a JSON dataset through the catalog, not through a pandas-read dataset in a run.

    pandas retries a refused S3 read anonymously; AWS answers that with 403 again, but moto's
    server (checking signatures here) crashes with a 500 on a request without an Authorization
    header, which would hide the refusal. fsspec-direct datasets (JSON, pickle) make no such
    retry, so this is the real 403 from a real S3 API.
    """
    process, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # every call signed
    try:
        use_endpoint(monkeypatch, endpoint, AWS_ACCESS_KEY_ID="not-a-known-key")
        with inside(project):
            bootstrap_project(project)
            params = {"data_root": f"s3://{BUCKET}/x"}
            with KedroSession.create(
                project_path=project, env="cloud", runtime_params=params
            ) as session:
                catalog = session.load_context().catalog
        with pytest.raises(DatasetError) as caught:
            catalog.load("data_quality_report")
    finally:
        stop(process)
    message = explain_storage_failure(caught.value, catalog)
    assert message is not None
    assert message.startswith(f"Could not load dataset 'data_quality_report' at s3://{BUCKET}/x/")
    assert "credentials were refused" in message


def test_cloud_run_without_tracking_server_fails_early(
    cloud_env: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    _, root = fresh_root()
    message = _run_expecting(
        project, MissingTrackingServerError, {"data_root": root}, ["data_processing"]
    )
    assert "MLFLOW_TRACKING_URI is not set" in message
    assert not (project / "mlflow.db").exists(), "MLflow fell back to a local store"


@pytest.mark.parametrize(
    "case",  # (dataset, key under the root, a good value, a value its save fails on)
    [
        (
            "rejected_events",
            "02_intermediate/quarantine/rejected_events.parquet",
            pd.DataFrame({"source_row": [1, 2], "reject_reason": ["missing_value", "duplicate"]}),
            pd.DataFrame({"source_row": [1, 2], "reject_reason": [{"a": 1}, 3.5]}),
        ),
        (  # a reporting figure (plotly JSON, what kedro-viz previews)
            "predicted_vs_actual_figure",
            "08_reporting/runs/reporting/predicted_vs_actual.json",
            go.Figure(go.Scatter(x=[1, 2], y=[2, 1])),
            object(),
        ),
    ],
    ids=["parquet", "plotly figure"],
)
def test_failed_save_leaves_the_previous_object_intact(
    cloud_env: str, project: Path, case: tuple
) -> None:
    name, key, good, bad = case
    prefix, root = fresh_root()
    with inside(project):
        bootstrap_project(project)
        with KedroSession.create(
            project_path=project, env="cloud", runtime_params={"data_root": root}
        ) as session:
            catalog = session.load_context().catalog
    catalog.save(name, good)
    (stored,) = object_keys(cloud_env, prefix)  # a versioned dataset adds <version>/<file>
    assert stored.startswith(f"{prefix}/{key}")
    before = s3_client(cloud_env).get_object(Bucket=BUCKET, Key=stored)["Body"].read()

    with pytest.raises(Exception, match=name):
        catalog.save(name, bad)

    after = s3_client(cloud_env).get_object(Bucket=BUCKET, Key=stored)["Body"].read()
    assert after == before
    assert object_keys(cloud_env, prefix) == {stored}  # no partial object of the failed save
    loaded = catalog.load(name)  # and it reads back from S3 as what was saved
    assert type(loaded) is type(good)
