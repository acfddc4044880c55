"""`python -m geo_busyness.serving` follows an alias and a counts state as `kedro serve` does."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from geo_busyness.serving.__main__ import build_parser, pinned_alias, refresh_environment
from geo_busyness.serving.refresh import (
    ENV_COUNTS_INTERVAL,
    ENV_COUNTS_STATE,
    ENV_FOLLOW,
    ENV_FOLLOW_INTERVAL,
    ENV_MODEL_VERSION,
)


def test_a_directory_or_a_pinned_version_is_served_as_given() -> None:
    assert pinned_alias("/opt/ml/model", None) == ("/opt/ml/model", {})
    assert pinned_alias("models:/m/3", "3") == ("models:/m/3", {ENV_MODEL_VERSION: "3"})


def test_an_alias_is_pinned_to_its_version_and_followed(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        client = MlflowClient()
        client.create_registered_model("m")
        for _ in range(2):
            client.create_model_version("m", str(tmp_path), None)
        client.set_registered_model_alias("m", "champion", "2")
        location, env = pinned_alias("models:/m@champion", None)
        assert location == "models:/m/2"
        assert env == {ENV_FOLLOW: "models:/m@champion", ENV_MODEL_VERSION: "2"}
        with pytest.raises(SystemExit, match="alias 'nobody'"):
            pinned_alias("models:/m@nobody", None)
    finally:
        mlflow.set_tracking_uri(None)


def test_the_counts_state_and_the_interval_reach_the_refresher() -> None:
    args = build_parser().parse_args(
        ["--model", "/m", "--counts-state", "s3://b/state.parquet", "--poll-interval", "5"]
    )
    assert refresh_environment(args) == {
        ENV_COUNTS_STATE: "s3://b/state.parquet",
        ENV_COUNTS_INTERVAL: "5.0",
        ENV_FOLLOW_INTERVAL: "5.0",
    }
    assert refresh_environment(build_parser().parse_args(["--model", "/m"])) == {}
