"""ProjectPathsHook: every local path is the project's, whatever the working directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from geo_busyness.hooks.paths import (
    absolute_mlflow_config,
    absolute_path_parameters,
    absolute_tracking_uri,
)
from tests.conftest import make_project_copy


def test_a_relative_sqlite_store_is_taken_from_the_project_path(tmp_path: Path) -> None:
    """MLflow resolves `sqlite:///mlflow.db` against the working directory (issue #24: a DAG
    run made a second registry in the Airflow home); it is the project's file."""
    assert (
        absolute_tracking_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    )
    for unchanged in ("sqlite:////srv/mlflow.db", "http://mlflow:5000", "databricks", None):
        assert absolute_tracking_uri(unchanged, tmp_path) == unchanged


def test_the_mlflow_settings_name_the_projects_store_and_artifacts(tmp_path: Path) -> None:
    config = {"server": {"mlflow_tracking_uri": "sqlite:///mlflow.db"}, "ui": {"port": "5000"}}
    absolute = absolute_mlflow_config(config, tmp_path, {})
    assert absolute["server"]["mlflow_tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    location = absolute["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"]
    assert location == (tmp_path / "mlruns").as_uri() and absolute["ui"] == {"port": "5000"}
    # cloud: null in the file, MLFLOW_TRACKING_URI from the environment
    cloud = {"server": {"mlflow_tracking_uri": None}}
    from_env = absolute_mlflow_config(cloud, tmp_path, {"MLFLOW_TRACKING_URI": "sqlite:///m.db"})
    assert from_env["server"]["mlflow_tracking_uri"] == f"sqlite:///{tmp_path}/m.db"
    served = {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert absolute_mlflow_config(cloud, tmp_path, served) == cloud
    # An absolute SQLite store keeps its path; a new experiment's artifacts are the project's.
    fixed = {"server": {"mlflow_tracking_uri": "sqlite:////srv/mlflow.db"}}
    kept = absolute_mlflow_config(fixed, tmp_path, {})
    assert kept["server"]["mlflow_tracking_uri"] == "sqlite:////srv/mlflow.db"
    kwargs = kept["tracking"]["experiment"]["create_experiment_kwargs"]
    assert kwargs["artifact_location"] == (tmp_path / "mlruns").as_uri()


def test_path_parameters_are_taken_from_the_project_path(tmp_path: Path) -> None:
    params = {
        "deployment": {
            "package_dir": "data/packages",
            "local": {"model_store": "data/serving", "shadow": False},
            "sagemaker": {"prefix": "geo/models", "bucket_dir": "s3://b/x"},
        },
        "retraining": {"lock_file": "data/retraining.lock", "force": False},
        "report_file": "/abs/report.json",
    }
    absolute = absolute_path_parameters(params, tmp_path)
    assert absolute["deployment"]["package_dir"] == f"{tmp_path}/data/packages"
    assert absolute["deployment"]["local"] == {
        "model_store": f"{tmp_path}/data/serving",
        "shadow": False,
    }
    assert absolute["deployment"]["sagemaker"] == params["deployment"]["sagemaker"]
    assert absolute["retraining"]["lock_file"] == f"{tmp_path}/data/retraining.lock"
    assert absolute["report_file"] == "/abs/report.json"


@pytest.mark.slow  # a real KedroSession
def test_a_session_started_elsewhere_uses_the_projects_paths(tmp_path: Path, monkeypatch) -> None:
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    project = make_project_copy(tmp_path / "project")
    config = project / "conf" / "base" / "mlflow.yml"
    config.write_text(
        re.sub(
            r"(?m)^(\s*mlflow_tracking_uri:)\s*\S+", r"\1 sqlite:///mlflow.db", config.read_text()
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()
        import mlflow  # noqa: PLC0415 - heavy

        assert mlflow.get_tracking_uri() == f"sqlite:///{project}/mlflow.db"
        assert context.params["retraining"]["lock_file"] == f"{project}/data/retraining.lock"
        assert context.params["deployment"]["local"]["model_store"].startswith(str(project))
    assert list(elsewhere.iterdir()) == []
