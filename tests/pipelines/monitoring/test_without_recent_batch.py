"""`make run`'s second command on a user's own data: no recent batch, no query rows.

`kedro run --pipelines inference,monitoring` in a copy of the trained project whose
`recent_events.csv` and `inference_queries.csv` (which only the synthetic generator writes) are
gone: inference writes the forecast and scores no query; monitoring judges the newest week of
clean_events against the model, and says so.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from geo_busyness.schemas import EVENT_TIME
from tests.conftest import TrainedProject, copy_project, run_kedro

RAW = Path("data") / "01_raw"


@pytest.fixture(scope="module")
def own_data_run(
    trained_project: TrainedProject,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[str]]:
    """The copy, and the INFO messages of the pipelines' loggers during the run (collected on
    ``geo_busyness.pipelines``: the logging configuration replaces the handlers of the loggers
    it names, ``geo_busyness`` and the root, when the run starts)."""
    project = copy_project(
        trained_project.path, tmp_path_factory.mktemp("own-data") / "project", with_mlflow=True
    )
    (project / RAW / "recent_events.csv").unlink()
    (project / RAW / "inference_queries.csv").unlink()
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.INFO)
    logger = logging.getLogger("geo_busyness.pipelines")
    logger.addHandler(handler)
    try:
        run_kedro(project, ["inference", "monitoring"])
    finally:
        logger.removeHandler(handler)
    return project, messages


def read_json(project: Path, path: str) -> dict:
    return json.loads((project / "data" / path).read_text())


def test_monitoring_judges_the_newest_week_of_clean_events(own_data_run) -> None:
    project, messages = own_data_run
    clean = pd.read_parquet(project / "data" / "03_primary" / "clean_events.parquet")
    end = clean[EVENT_TIME].max().floor("h") + pd.Timedelta(hours=1)
    week = clean[clean[EVENT_TIME] >= end - pd.Timedelta(days=7)]
    report = read_json(project, "08_reporting/monitoring/monitoring_report.json")
    window = report["recent_window"]
    assert window["source"] == "newest_week_of_clean_events"
    assert window["rows"] == len(week) > 0
    assert window["why"] == "recent_raw_events is absent"
    assert (
        report["data_quality"]["by_reason"] == {}
        and "not compared" in report["data_quality"]["note"]
    )
    assert report["performance"]["rows"] > 0
    html = (project / "data" / "08_reporting" / "monitoring" / "monitoring_report.html").read_text()
    assert f"Recent window: the newest week of clean_events, {window['start_utc']}" in html
    assert "Data quality not compared" in html
    verdict = read_json(project, "08_reporting/monitoring/retrain_recommended.json")
    assert isinstance(verdict["retrain_recommended"], bool)
    (line,) = [m for m in messages if m.startswith("No separate recent batch")]
    assert f"({len(week):,} events)" in line


def test_inference_writes_the_forecast_and_scores_no_query(own_data_run) -> None:
    project, messages = own_data_run
    forecast = pd.read_parquet(project / "data" / "07_model_output" / "busyness_forecast.parquet")
    scored = pd.read_parquet(project / "data" / "07_model_output" / "scored_queries.parquet")
    assert len(forecast) > 0 and forecast["predicted_busyness"].notna().all()
    assert scored.empty
    report = read_json(project, "08_reporting/inference/inference_report.json")
    assert report["queries"]["rows"] == 0 and "none scored" in report["queries"]["note"]
    assert any(m.startswith("No query rows (inference_queries is absent)") for m in messages)
