"""Versioned training outputs through real Kedro runs (#24 item 5): a first model's outputs become
the current reports; a rejected challenger's stay under its run and change nothing current."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.io as pio
import pytest

from tests.conftest import SMALL_TRAINING, copy_project, project_mlflow, run_kedro

TRAINING = ["feature_engineering", "modeling", "reporting"]
RUNS = Path("data/08_reporting/runs")


def _versions(project: Path, name: str) -> list[Path]:
    """The versioned copies of a run output, oldest first."""
    return sorted((project / RUNS / name).glob(f"*/{Path(name).name}"))


@pytest.fixture(scope="module")
def two_runs(processed_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A first training run (its gate passes: version 1), then a rejected challenger."""
    project = copy_project(
        processed_project, tmp_path_factory.mktemp("versioned") / "project", with_mlflow=False
    )
    run_kedro(project, TRAINING, SMALL_TRAINING)
    current = project / "data/08_reporting"
    first = {
        "report": (current / "evaluation_report.json").read_text(),
        "page": (current / "reporting/report.html").read_text(),
        "pointer": json.loads((current / "champion_outputs.json").read_text()),
    }
    rejected = {**SMALL_TRAINING, "modeling": {**SMALL_TRAINING["modeling"], "min_r2": 1.01}}
    run_kedro(project, TRAINING, rejected)
    return {"project": project, "first": first}


@pytest.mark.slow  # two Kedro training runs
def test_the_first_registered_version_is_published_and_a_rejected_one_is_not(two_runs):
    project, first = two_runs["project"], two_runs["first"]
    assert first["pointer"]["version"] == "1"
    assert json.loads(first["report"])["registration"]["version"] == "1"
    current = project / "data/08_reporting"
    assert (current / "evaluation_report.json").read_text() == first["report"]
    assert (current / "reporting/report.html").read_text() == first["page"]
    assert json.loads((current / "champion_outputs.json").read_text()) == first["pointer"]

    reports = _versions(project, "evaluation_report.json")
    assert len(reports) == 2  # each run kept its own
    latest = json.loads(reports[-1].read_text())
    assert latest["gate"]["passed"] is False and latest["registration"]["registered"] is False
    figures = _versions(project, "reporting/predicted_vs_actual.json")
    titles = [pio.from_json(path.read_text()).layout.title.text for path in figures]
    assert "model version 1 (" in titles[0] and "model not registered (" in titles[1]
    assert len(_versions(project, "reporting/shap_summary.png")) == 2


@pytest.mark.slow  # two Kedro training runs
def test_each_run_logs_its_outputs_to_its_mlflow_run(two_runs):
    project = two_runs["project"]
    manifests = [json.loads(p.read_text()) for p in _versions(project, "run_outputs.json")]
    assert [m["model_version"] for m in manifests] == ["1", None]
    with project_mlflow(project) as client:
        for manifest in manifests:
            logged = {a.path for a in client.list_artifacts(manifest["run_id"], "reporting")}
            assert set(manifest["artifacts"]) == logged
            assert {"reporting/evaluation_report.json", "reporting/shap_summary.png"} <= logged
