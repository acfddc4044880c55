"""Versioned run outputs (#24 item 5): each run's outputs logged under its MLflow run; the current
reports replaced only when the champion changes, never by a rejected challenger."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
import pytest
from matplotlib.figure import Figure

from geo_busyness.pipelines.reporting.outputs import (
    current_destination,
    is_current,
    log_run_outputs,
    publish_champion_outputs,
    version_to_publish,
)
from geo_busyness.pipelines.reporting.pipeline import FIGURES

WINDOWS = {
    "train_start": "2026-01-05T00:00:00+00:00",
    "test_start": "2026-02-09T00:00:00+00:00",
    "test_end": "2026-02-16T00:00:00+00:00",
}
NAME = "geo-busyness-test"


def _report(marker: str, version: str | None, *, passed: bool = True) -> dict:
    registration = {"registered": version is not None, "run_id": "r"}
    if version is not None:
        registration["version"] = version
    return {
        "marker": marker,
        "time_windows": WINDOWS,
        "gate": {"passed": passed},
        "registration": registration,
    }


def test_only_the_champion_or_before_any_champion_a_registered_version_is_published():
    latest = {"model_version": "5", "run_id": "run-5"}
    champion = {"version": "3", "run_id": "run-3"}
    assert version_to_publish(champion, latest)["version"] == "3"
    assert version_to_publish(None, latest)["version"] == "5"
    assert version_to_publish(None, {"model_version": None, "run_id": "run-6"}) is None
    assert is_current({"version": "3", "run_id": "run-3"}, version_to_publish(champion, latest))
    assert not is_current({"version": "2", "run_id": "run-2"}, {"version": "3", "run_id": "x"})
    assert is_current(None, None) and not is_current(None, champion)
    assert current_destination("reporting/evaluation_report.json") == "evaluation_report.json"
    assert current_destination("reporting/shap_summary.png") == "reporting/shap_summary.png"


def _outputs(report: dict) -> dict:
    """The inputs of log_run_outputs: small real figures named like the pipeline's."""
    shap = Figure()
    shap.suptitle(report["marker"])
    figures = {name: go.Figure(layout={"title": report["marker"]}) for name in FIGURES}
    return {
        "evaluation_report": report,
        "shap_summary": {"marker": report["marker"]},
        "shap_summary_plot": shap,
        "reporting_page": f"<html>{report['marker']}</html>",
        "busyness_map": f"<html>map {report['marker']}</html>",
        **figures,
    }


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A real MLflow SQLite store and artifact folder in ``tmp_path``; the current folder."""
    import mlflow  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("runs", artifact_location=str(tmp_path / "artifacts"))
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    params = {
        "outputs": {
            "current_dir": str(tmp_path / "08_reporting"),
            "registered_model_name": NAME,
            "champion_alias": "champion",
            "png_dpi": 50,
        }
    }
    try:
        yield mlflow, client, experiment, params
    finally:
        mlflow.set_tracking_uri(None)


def _train(mlflow, client, experiment, params, marker: str, *, register: bool) -> dict:
    """One training run: log its outputs (registering a version if its gate passed)."""
    with mlflow.start_run(experiment_id=experiment) as run:
        version = None
        if register:
            source = f"runs:/{run.info.run_id}/model"
            version = client.create_model_version(NAME, source, run_id=run.info.run_id).version
        report = _report(marker, version, passed=register)
        manifest = log_run_outputs(**_outputs(report), params=params)
    return manifest


def _current(params: dict, name: str = "evaluation_report.json") -> str:
    return (Path(params["outputs"]["current_dir"]) / name).read_text()


@pytest.mark.slow  # MLflow import and a SQLite store: a few seconds
def test_a_rejected_challenger_never_replaces_the_champions_reports(tracking, tmp_path):
    mlflow, client, experiment, params = tracking
    first = _train(mlflow, client, experiment, params, "first", register=True)
    assert first["model_version"] == "1" and "reporting/shap_summary.png" in first["artifacts"]
    pointer = publish_champion_outputs(first, params)  # no champion yet: the registered one
    assert (pointer["version"], pointer["role"]) == (
        "1",
        "registered, not deployed yet (no champion)",
    )
    assert json.loads(_current(params))["marker"] == "first"
    client.set_registered_model_alias(NAME, "champion", "1")  # deployed

    rejected = _train(mlflow, client, experiment, params, "rejected", register=False)
    assert publish_champion_outputs(rejected, params)["version"] == "1"
    assert json.loads(_current(params))["marker"] == "first"
    assert "first" in _current(params, "reporting/report.html")
    # The rejected run's outputs stay reachable under its MLflow run.
    kept = mlflow.artifacts.download_artifacts(
        run_id=rejected["run_id"],
        artifact_path="reporting/evaluation_report.json",
        dst_path=str(tmp_path / "rejected"),
    )
    assert json.loads(Path(kept).read_text())["marker"] == "rejected"

    challenger = _train(mlflow, client, experiment, params, "challenger", register=True)
    publish_champion_outputs(challenger, params)  # registered, not serving: still the champion's
    assert json.loads(_current(params))["marker"] == "first"

    client.set_registered_model_alias(NAME, "champion", challenger["model_version"])
    pointer = publish_champion_outputs({"model_version": "2"}, params)  # after the deployment
    assert (pointer["version"], pointer["role"], pointer["run_id"]) == (
        "2",
        "champion",
        challenger["run_id"],
    )
    assert json.loads(_current(params))["marker"] == "challenger"
    png = Path(params["outputs"]["current_dir"]) / "reporting" / "shap_summary.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    pointer_file = json.loads(_current(params, "champion_outputs.json"))
    assert pointer_file["version"] == "2" and str(png) in pointer_file["files"]


def test_figures_carry_the_caption_in_their_title():
    import pandas as pd  # noqa: PLC0415

    from geo_busyness.pipelines.reporting.nodes import feature_importance_figure  # noqa: PLC0415
    from geo_busyness.report_header import caption, report_context  # noqa: PLC0415
    from tests.pipelines.reporting.reports import REPORT  # noqa: PLC0415

    unregistered = REPORT | {"registration": {"registered": False}}
    line = caption(report_context(unregistered, REPORT["time_windows"], "UTC"))
    empty = pd.DataFrame(columns=["feature", "importance_mean", "importance_std"])
    title = feature_importance_figure(empty, line).layout.title.text
    assert title.endswith(f"<br><sup>{line}</sup>") and "not registered" in title


@pytest.mark.slow  # MLflow import and a SQLite store: a few seconds
def test_a_champion_run_without_outputs_leaves_the_current_reports_and_the_run_standing(
    tracking, caplog
):
    mlflow, client, experiment, params = tracking
    with mlflow.start_run(experiment_id=experiment) as run:  # e.g. registered before #24
        version = client.create_model_version(NAME, "runs:/x/model", run_id=run.info.run_id)
    client.set_registered_model_alias(NAME, "champion", version.version)
    pointer = publish_champion_outputs({"model_version": None}, params)
    assert pointer["published"] is False and pointer["version"] == "1"
    assert not (Path(params["outputs"]["current_dir"]) / "champion_outputs.json").exists()
    assert "Current reports not replaced" in caplog.text
