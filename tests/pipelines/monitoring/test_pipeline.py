"""`kedro run --pipelines monitoring` end to end: a shifted recent week raises the right alarms,
an unshifted one from the same generator raises none."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from geo_busyness.pipelines.data_generation.nodes import generate_recent_events
from geo_busyness.schemas import SWAPPED_COORDINATES
from tests.conftest import (
    SMALL_GENERATION,
    TrainedProject,
    copy_project,
    project_mlflow,
    run_kedro,
)

#: A new district with 15% of the demand, evening demand doubled, 5% of rows with lat/lon swapped.
SHIFT = {
    "new_district": {"share": 0.15},
    "evening_demand_factor": 2.0,
    "swapped_coordinates_share": 0.05,
}
REPORTS = Path("data") / "08_reporting" / "monitoring"


@dataclass
class Monitored:
    """What one monitoring run wrote, and its MLflow run."""

    project: Path
    report: dict[str, Any]
    verdict: dict[str, Any]
    html: str
    metrics: dict[str, float]
    artifacts: set[str]


def write_recent_window(project: Path, shift: dict[str, Any]) -> None:
    """The week after the project's history from the same city, with ``shift`` applied."""
    conf = project / "conf" / "base"
    params = yaml.safe_load((conf / "parameters_data_generation.yml").read_text())
    timezone = yaml.safe_load((conf / "parameters_data_processing.yml").read_text())[
        "data_processing"
    ]["source_timezone"]
    city = {**params["data_generation"], **SMALL_GENERATION, "shift": shift}
    recent, _ = generate_recent_events(city, timezone)
    recent.to_csv(project / "data" / "01_raw" / "recent_events.csv", index=False)


def monitor(trained: TrainedProject, dest: Path, shift: dict[str, Any]) -> Monitored:
    """Monitoring on a copy of the trained project, with a recent week written for ``shift``."""
    project = copy_project(trained.path, dest, with_mlflow=True)
    write_recent_window(project, shift)
    run_kedro(project, ["monitoring"])
    reports = project / REPORTS
    with project_mlflow(project) as client:
        experiment = client.get_experiment_by_name("geo-busyness")
        (run,) = client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
        )
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    return Monitored(
        project,
        json.loads((reports / "monitoring_report.json").read_text()),
        json.loads((reports / "retrain_recommended.json").read_text()),
        (reports / "monitoring_report.html").read_text(),
        dict(run.data.metrics),
        artifacts,
    )


@pytest.fixture(scope="module")
def shifted(trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory):
    return monitor(trained_project, tmp_path_factory.mktemp("shifted") / "project", SHIFT)


@pytest.fixture(scope="module")
def unshifted(trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory):
    return monitor(trained_project, tmp_path_factory.mktemp("unshifted") / "project", {})


#: The level shift of the end-to-end test. Not 1.2: on this small city a 20% shift gives +31%
#: against the model's profile with p = 0.23, because the city's own history swings as much
#: (a week 38% above the one before; benchmarks/monitoring_level.py, data set small-42). The
#: check fired from about 1.7 at p < 0.02, so at least as early at the shipped p < 0.05;
#: 1.8 leaves a margin.
LEVEL_FACTOR = 1.8


@pytest.fixture(scope="module")
def level_shifted(trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory):
    """The same recent week with ``LEVEL_FACTOR`` times the demand in every cell and hour."""
    project = tmp_path_factory.mktemp("level_shifted") / "project"
    return monitor(trained_project, project, {"level_factor": LEVEL_FACTOR})


def _reasons(monitored: Monitored, prefix: str) -> list[str]:
    return [reason for reason in monitored.verdict["reasons"] if reason.startswith(prefix)]


def test_shifted_week_recommends_retraining_for_the_right_reasons(shifted, trained_project):
    verdict = shifted.verdict
    assert verdict["retrain_recommended"] is True
    assert verdict["model_version"] == trained_project.report["registration"]["version"]
    assert verdict["reasons"] == shifted.report["reasons"]
    # the new district: events in cells the model never saw, and the location features move
    (unseen,) = _reasons(shifted, "unseen cells:")
    assert "of recent events in cells unseen in training (> 5.0%)" in unseen
    assert _reasons(shifted, "cell drift: PSI")
    assert _reasons(shifted, "courier_lat drift") or _reasons(shifted, "courier_lon drift")
    # evening demand doubled: the daily rhythm moves, or the model's errors grow
    assert _reasons(shifted, "hour_of_day drift: PSI") or _reasons(shifted, "performance:")
    # the swapped coordinates: their reject reason, and only that one
    (rejects,) = _reasons(shifted, "reject share")
    assert rejects.startswith(f"reject share {SWAPPED_COORDINATES} ")
    assert rejects.endswith("> 2.0 pp)")
    quality = shifted.report["data_quality"]["by_reason"][SWAPPED_COORDINATES]
    assert 0.045 < quality["recent_share"] < 0.07
    # nothing about what did not change: distances to the restaurant
    assert not _reasons(shifted, "Hdist_to_restaurant") and not _reasons(shifted, "dist_to")


def test_unshifted_week_raises_no_alarm(unshifted):
    assert unshifted.verdict["retrain_recommended"] is False
    assert unshifted.verdict["reasons"] == []
    checks = unshifted.report["checks"]
    assert checks and not any(check["fired"] for check in checks)
    assert unshifted.report["event_features"]["unseen_cells"]["recent_event_share"] < 0.01


def test_a_level_change_is_a_reason_to_retrain(level_shifted, unshifted):
    """The week with more demand everywhere: the level check fires with the shipped thresholds,
    naming the change and its p-value; the same week unshifted does not fire it."""
    assert level_shifted.verdict["retrain_recommended"] is True
    (reason,) = _reasons(level_shifted, "level:")
    assert reason.startswith("level: recent window has ")
    assert "% more events than the model expected (" in reason and "; p=" in reason
    level, quiet = level_shifted.report["level"], unshifted.report["level"]
    assert level["fired"] and level["relative_change"] > level["change_threshold"]
    assert level["p_value"] < level["p_value_threshold"]
    assert not quiet["fired"] and abs(quiet["relative_change"]) < quiet["change_threshold"]
    # the same window and model: the expectation is the same, the actual total 20% higher
    assert level["expected_total"] == pytest.approx(quiet["expected_total"], rel=0.01)
    assert level["actual_total"] / quiet["actual_total"] == pytest.approx(LEVEL_FACTOR, rel=0.05)
    assert level["standard_error"] == pytest.approx(quiet["standard_error"], rel=0.01)
    assert level_shifted.metrics["monitoring_metrics.level.level_change"] == pytest.approx(
        level["relative_change"]
    )
    assert "monitoring_metrics.bias.prediction_bias" in level_shifted.metrics
    assert "Level and bias" in level_shifted.html


def test_report_covers_every_check_with_figures_and_p_values(unshifted):
    report = unshifted.report
    features = report["event_features"]
    for name in ("courier_lat", "courier_lon", "Hdist_to_restaurant", "dist_to_restaurant"):
        assert {"psi", "ks_d", "ks_p_value", "psi_threshold", "ks_d_threshold"} <= set(
            features[name]
        )
    for name in ("hour_of_day", "day_of_week", "cell"):
        assert {"psi", "chi2", "chi2_p_value"} <= set(features[name])
    assert features["cell"]["bins"]["categories"][-1] == "unseen"
    assert report["cell_hours"]["predictions"]["psi"] < 0.1
    performance = report["performance"]
    assert performance["rows"] > 0
    assert performance["test_window"]["mae"] == pytest.approx(
        float(report["model"]["tags"]["test_mae"])
    )
    assert report["reference_window"]["start"] == report["model"]["tags"]["window_train_start"]
    assert report["model"]["chosen_by"] == "alias challenger"  # no champion in the fixture


def test_a_bad_recent_batch_is_reported_not_fatal(shifted):
    """~7% rejected (5% swapped + 2% dirty) is over data_processing's 5% gate: reported only."""
    recent_quality = json.loads(
        (shifted.project / REPORTS / "recent_data_quality_report.json").read_text()
    )
    assert recent_quality["rejected_fraction"] > 0.05
    quarantine = pd.read_parquet(
        shifted.project
        / "data"
        / "02_intermediate"
        / "quarantine"
        / "recent_rejected_events.parquet"
    )
    assert (quarantine["reject_reason"] == SWAPPED_COORDINATES).mean() > 0.5
    # the history's own outputs are untouched by the recent batch
    history_quality = json.loads(
        (shifted.project / "data" / "08_reporting" / "data_quality_report.json").read_text()
    )
    assert history_quality["rejected_fraction"] < 0.05


def test_figures_and_html_report_go_to_mlflow(shifted, unshifted):
    # kedro-mlflow prefixes each metric with its dataset's name
    assert shifted.metrics["monitoring_metrics.retrain_recommended"] == 1.0
    assert unshifted.metrics["monitoring_metrics.retrain_recommended"] == 0.0
    assert shifted.metrics["monitoring_metrics.checks_fired"] == sum(
        check["fired"] for check in shifted.report["checks"]
    )
    assert shifted.metrics["monitoring_metrics.unseen_cells.unseen_cell_event_share"] > 0.05
    assert "monitoring_metrics.feature_drift.courier_lat.ks_d" in shifted.metrics
    assert "monitoring_metrics.performance.recent_mae" in shifted.metrics
    assert shifted.artifacts == {"monitoring/monitoring_report.html"}


def test_html_report_is_self_contained(shifted, unshifted):
    for html in (shifted.html, unshifted.html):
        assert html.startswith("<!DOCTYPE html>")
        assert "<script" not in html and "<link" not in html and "src=" not in html
        assert "https://" not in html and "//cdn" not in html
        assert html.count("<svg") >= 9  # a chart per feature, cell-hours and performance
    assert "Retraining recommended" in shifted.html
    assert "coordinates_out_of_range" in shifted.html
    assert "No retraining needed" in unshifted.html
