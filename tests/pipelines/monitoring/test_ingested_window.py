"""Monitoring judges the newest data by event time, counted from the batch's own rows: the
newest ingested batch is the recent window, and a batch for hours the model already holds is
counted as the batch says (issue #24, "What was measured" item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from geo_busyness.datasets import OptionalCSVDataset
from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.pipelines.data_generation.landing import land_synthetic_batch
from geo_busyness.pipelines.ingestion.datasets import EventHistoryDataset, OptionalJSONDataset
from geo_busyness.pipelines.monitoring.level import compare_level
from geo_busyness.pipelines.monitoring.nodes import (
    compare_data_quality,
    extend_monitored_model,
    known_before,
    score_recent_cell_hours,
)
from geo_busyness.pipelines.monitoring.pipeline import clean_recent_events
from geo_busyness.pipelines.monitoring.recent_window import (
    NEWEST_INGESTED,
    choose_recent_batch,
    known_events,
    newest_ingested_batch,
)
from geo_busyness.schemas import EVENT_TIME, SOURCE_ROW
from tests.conftest import SMALL_GENERATION, TrainedProject, copy_project, run_kedro
from tests.pipelines.ingestion.batches import history_rows, ingest, land_week, tiny_parameters
from tests.pipelines.monitoring.test_level import PARAMS, recent_week
from tests.serving.model_fixture import END, RESOLUTION, START, fit_model, synthetic_events

WEEK = pd.Timedelta(weeks=1)


def champion_through_the_week(week: pd.DataFrame):
    """The fixture model as a champion retrained through ``week``: it holds that week's counts
    (its origin a week later than the fixture's)."""
    return fit_model().with_counts(count_cell_hours(week, RESOLUTION), END + WEEK)


def level_of_batch(batch: pd.DataFrame) -> tuple[dict, dict]:
    """The level check of ``batch`` against a champion that already holds the original week."""
    original = recent_week(2000)
    history = pd.concat([synthetic_events(), original], ignore_index=True)
    forecaster, origin = extend_monitored_model(champion_through_the_week(original), history, batch)
    panel = score_recent_cell_hours(batch, forecaster)
    return compare_level(forecaster, origin, panel, PARAMS)["level"], origin


def test_a_batch_13_above_the_history_is_a_level_change_even_where_the_model_holds_those_hours():
    """The issue's failure: after a promotion the champion had been trained through the recent
    dates, and the level check counted its own old counts for them (46,940 events) instead of
    the new x1.3 batch's clean rows (60,512): nothing fired. 2,000 -> 2,600 here."""
    level, origin = level_of_batch(recent_week(2600))
    assert origin["model_hours_replaced"] == 168
    assert level["actual_total"] == 2600
    assert level["relative_change"] == pytest.approx(0.3, abs=0.1)
    assert level["fired"]
    same, _ = level_of_batch(recent_week(2000))
    assert same["actual_total"] == 2000 and not same["fired"]


def test_a_batch_after_the_models_origin_replaces_nothing():
    model = fit_model()
    _, origin = extend_monitored_model(model, synthetic_events(), recent_week(2000))
    assert origin["model_hours_replaced"] == 0 and origin["model_origin_utc"] == END.isoformat()


# ---------------------------------------------------------------- the window from the ingestion
@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weeks 1 and 0 of the tiny city ingested (in that order: the newest is not the latest)."""
    root = tmp_path_factory.mktemp("ingested")
    land_week(root, 1)
    ingest(root)
    land_week(root, 0)
    ingest(root)
    return root


def stores(root: Path) -> tuple[dict, dict]:
    record = OptionalJSONDataset(filepath=str(root / "03_primary" / "ingestion_record.json"))
    history = EventHistoryDataset(
        path=str(root / "03_primary" / "event_history"),
        dataset={"type": "geo_busyness.datasets.ParquetDataset"},
        filename_suffix=".parquet",
    )
    return record.load(), history.load()


def test_the_newest_batch_by_event_time_is_judged_with_its_own_quality(ingested: Path) -> None:
    record, history = stores(ingested)
    assert newest_ingested_batch(record)["name"] == "synthetic_week_01"
    mapping = tiny_parameters()["data_processing"]["column_mapping"]
    rows, window = choose_recent_batch(None, pd.DataFrame(), mapping, record, history)
    entry = record["batches"]["synthetic_week_01"]
    assert window["source"] == NEWEST_INGESTED and window["batch"] == "synthetic_week_01"
    assert window["rows"] == len(rows) == entry["rows_clean"]
    assert list(rows.columns) == [source for source in mapping.values() if source]
    quality = window["data_quality"]
    assert (quality["rows_in"], quality["rows_rejected"]) == (
        entry["rows_in"],
        entry["rows_rejected"],
    )
    reference = {"rows_in": 100, "rejected_fraction": 0.0, "rejected_by_reason": {}}
    compared = compare_data_quality(
        reference,
        {"rows_in": 1, "rejected_by_reason": {}},
        {"thresholds": {"reject_share_increase_pp": 2.0}},
        window,
    )
    assert compared["recent_rows"] == entry["rows_in"]
    assert set(compared["by_reason"]) == set(entry["rejected_by_reason"])


def test_the_recent_cleaning_gets_the_ingested_batchs_clean_rows(
    ingested: Path, tmp_path: Path
) -> None:
    params = tiny_parameters()
    record, history = stores(ingested)
    stale = tmp_path / "recent_events.csv"
    recent_week(50).to_csv(stale, index=False)  # a generated recent file is there too
    catalog = DataCatalog(
        {
            "recent_raw_events": OptionalCSVDataset(filepath=str(stale)),
            "clean_events": MemoryDataset(pd.DataFrame()),
            "ingestion_record": MemoryDataset(record),
            "event_history": MemoryDataset(history, copy_mode="assign"),
            "params:data_processing": MemoryDataset(params["data_processing"]),
            "params:data_processing.column_mapping": MemoryDataset(
                params["data_processing"]["column_mapping"]
            ),
            "params:monitoring.recent_max_rejected_fraction": MemoryDataset(1.0),
            "recent_clean_events": MemoryDataset(),
            "recent_data_quality_report": MemoryDataset(),
            "recent_window": MemoryDataset(),
        }
    )
    SequentialRunner().run(clean_recent_events(), catalog)
    judged = catalog.load("recent_clean_events").drop(columns=SOURCE_ROW)
    stored = history_rows(ingested, "synthetic_week_01").drop(columns=SOURCE_ROW)
    pd.testing.assert_frame_equal(
        judged, stored.sort_values(EVENT_TIME, kind="stable", ignore_index=True), check_dtype=False
    )
    assert catalog.load("recent_window")["source"] == NEWEST_INGESTED


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_kedro_run_ingestion_then_monitoring_judges_the_landed_batch(
    trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`kedro run --pipelines ingestion,monitoring` on the trained small city: a week landed
    with 1.8 times the demand (the level test's factor in test_pipeline.py) is the window, not
    the generated recent_events.csv lying beside it, and the level check names the shift."""
    project = copy_project(
        trained_project.path, tmp_path_factory.mktemp("ingested") / "project", with_mlflow=True
    )
    land_synthetic_batch(project, 0, scale=1.8, overrides={"data_generation": SMALL_GENERATION})
    run_kedro(project, ["ingestion", "monitoring"])
    data = project / "data"
    record = json.loads((data / "03_primary" / "ingestion_record.json").read_text())
    entry = record["batches"]["synthetic_week_00"]
    report = json.loads(
        (data / "08_reporting" / "monitoring" / "monitoring_report.json").read_text()
    )
    window = report["recent_window"]
    assert window["source"] == NEWEST_INGESTED and window["rows"] == entry["rows_clean"]
    level = report["level"]
    assert 0.9 * entry["rows_clean"] <= level["actual_total"] <= entry["rows_clean"]  # model cells
    assert level["fired"] and level["relative_change"] > 0.3
    assert any(reason.startswith("level:") for reason in report["reasons"])


def test_forgetting_the_windows_hours_leaves_the_model_untouched():
    model = fit_model()
    start = END - WEEK
    short = known_before(model, start)
    assert short.origin == start and model.origin == END
    assert short.history_.hours == model.history_.hours - 168
    assert (short.history_.counts == model.history_.counts[:, : short.history_.hours]).all()


# ---------------------------------------------------------------- weeks between model and window
def _ingested(weeks: list[pd.DataFrame]) -> tuple[dict, dict]:
    """A record and history holding ``weeks`` as appended batches (one partition each)."""
    record = {"batches": {}}
    history = {}
    for index, week in enumerate(weeks):
        key = f"local_date=week{index}/batch=w{index}"
        record["batches"][f"w{index}"] = {"name": f"w{index}", "status": "appended"}
        record["batches"][f"w{index}"]["partitions"] = [key]
        history[key] = lambda week=week: week
    return record, history


def _week_after(n_events: int, weeks_after: int, seed: int) -> pd.DataFrame:
    week = synthetic_events(n_events, seed=seed, weeks=1)
    return week.assign(**{EVENT_TIME: week[EVENT_TIME] + (END - START) + weeks_after * WEEK})


def test_ingested_weeks_between_the_models_origin_and_the_window_are_counted_not_zero():
    """The soak's failure: the champion trained through the generated history, ingested weeks
    after it, then a x1.3 week judged. The weeks between came from clean_events only (absent
    there), so they counted as zero events: the expected level fell and its day-to-day
    variance exploded (a +47% week had p 0.87: no shift could ever fire). With the ingested
    weeks known, the expectation is the history's level and its standard error 10x smaller."""
    model, history = fit_model(), synthetic_events()
    between = [_week_after(2000, 0, seed=1), _week_after(2000, 1, seed=2)]
    record, stored = _ingested(between)
    known = known_events(history, record, stored)
    assert len(known) == len(history) + 4000  # every ingested row once, after the history
    assert len(known_events(known, record, stored)) == len(known)  # nothing counted twice
    batch = _week_after(2600, 2, seed=3)
    levels = {}
    for name, events in (("clean_events only", history), ("with the ingested weeks", known)):
        forecaster, origin = extend_monitored_model(model, events, batch)
        panel = score_recent_cell_hours(batch, forecaster)
        levels[name] = compare_level(forecaster, origin, panel, PARAMS)["level"]
    before, after = levels["clean_events only"], levels["with the ingested weeks"]
    assert after["standard_error"] < 0.5 and before["standard_error"] > 2.0
    assert after["expected_total"] > 1.2 * before["expected_total"]  # no zero weeks in it
