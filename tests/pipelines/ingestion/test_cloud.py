"""`kedro run --pipelines ingestion --env cloud` against a local S3 server (moto): the landing
prefix, the event history and the counts state on S3, a correction replacing its objects."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

from geo_busyness.model.counts_state import read_counts_state
from geo_busyness.testing import make_project_copy
from tests.cloud import conftest as cloud
from tests.cloud.conftest import BUCKET, object_keys, s3_client
from tests.conftest import run_kedro
from tests.pipelines.ingestion.batches import tiny_week
from tests.pipelines.memory import TINY_GENERATION

HISTORY = "03_primary/event_history/"
#: The moto server's fixtures (tests/cloud/conftest.py), for this module.
cloud_env, s3_endpoint = cloud.cloud_env, cloud.s3_endpoint


def put_batch(endpoint: str, prefix: str, name: str, week: int, rows: int | None = None) -> None:
    """Land the tiny city's week ``week`` (its first ``rows`` rows) as batch ``name``."""
    body = io.StringIO()
    tiny_week(week).iloc[:rows].to_csv(body, index=False)
    s3_client(endpoint).put_object(
        Bucket=BUCKET, Key=f"{prefix}/01_raw/landing/{name}.csv", Body=body.getvalue().encode()
    )


def test_ingestion_on_s3_appends_then_replaces_a_corrected_batch(
    cloud_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    project = make_project_copy(tmp_path / "project")
    prefix = f"runs/{uuid.uuid4().hex[:8]}"
    params = {"data_generation": TINY_GENERATION, "data_root": f"s3://{BUCKET}/{prefix}"}
    put_batch(cloud_env, prefix, "week_a", 0)
    put_batch(cloud_env, prefix, "week_b", 1)
    run_kedro(project, ["ingestion"], params, env="cloud")
    first = object_keys(cloud_env, f"{prefix}/{HISTORY}")
    assert {k.rsplit("batch=", 1)[1] for k in first} == {"week_a.parquet", "week_b.parquet"}

    put_batch(cloud_env, prefix, "week_a", 0, rows=200)  # a correction: its first rows only
    run_kedro(project, ["ingestion"], params, env="cloud")
    keys = object_keys(cloud_env, prefix)
    records = sorted(k for k in keys if k.startswith(f"{prefix}/03_primary/ingestion_record.json/"))
    assert len(records) == 2  # versioned: one per run
    s3 = s3_client(cloud_env)
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=records[-1])["Body"].read())
    assert record["last_run"]["corrected"] == ["week_a"]
    assert record["last_run"]["unchanged"] == ["week_b"]
    history = {k for k in keys if k.startswith(f"{prefix}/{HISTORY}")}
    kept_a = {k for k in history if k.endswith("batch=week_a.parquet")}
    assert {k.split(HISTORY)[1] for k in kept_a} == {
        f"{p}.parquet" for p in record["batches"]["week_a"]["partitions"]
    }
    assert {k for k in history if "week_b" in k} == {k for k in first if "week_b" in k}
    state = read_counts_state(f"s3://{BUCKET}/{prefix}/05_model_input/counts_state.parquet")
    assert state.counts["busyness"].sum() == record["history_rows"]
    assert state.batches == ("week_a", "week_b")
