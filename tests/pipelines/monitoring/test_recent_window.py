"""Without a separate recent batch, monitoring judges the newest week of the history: the recent
cleaning (the real data_processing nodes, run by Kedro's runner) gets that week in the source's
own column names and passes it through unchanged."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from geo_busyness.datasets import OptionalCSVDataset
from geo_busyness.operations import run_summary
from geo_busyness.pipelines.data_processing.pipeline import create_pipeline as data_processing
from geo_busyness.pipelines.ingestion.datasets import EventHistoryDataset, OptionalJSONDataset
from geo_busyness.pipelines.monitoring.nodes import compare_data_quality
from geo_busyness.pipelines.monitoring.pipeline import clean_recent_events
from geo_busyness.pipelines.monitoring.recent_window import (
    NEWEST_WEEK,
    RECENT_BATCH,
    choose_recent_batch,
    in_source_columns,
    newest_week,
)
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME, SOURCE_ROW

#: A ride table's own names (as the bike-share table has them): only time and place.
MAPPING = {
    "courier_location_timestamp": "start_time",
    "courier_lat": "latitude",
    "courier_lon": "longitude",
    "courier_id": None,
    "order_number": None,
    "order_created_timestamp": None,
    "restaurant_lat": None,
    "restaurant_lon": None,
}
PARAMS = {
    "column_mapping": MAPPING,
    "source_timezone": "America/Los_Angeles",
    "timestamp_format": "ISO8601",
    "service_area": None,
    "as_of": None,
    "max_rejected_fraction": 0.05,
    "memory_limit_mb": None,
}
DAYS = 20
PARQUET = "geo_busyness.datasets.ParquetDataset"


def raw_rides(rows: int = 4000) -> pd.DataFrame:
    """Trip starts over DAYS days, local times with their offsets, two bad rows."""
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2014-03-01", tz="America/Los_Angeles")  # a DST switch inside
    times = start + pd.to_timedelta(np.sort(rng.uniform(0, DAYS * 24, rows)), unit="h")
    table = pd.DataFrame(
        {
            "start_time": times.strftime("%Y-%m-%dT%H:%M:00%z"),
            "latitude": 37.78 + rng.normal(0, 0.01, rows),
            "longitude": -122.41 + rng.normal(0, 0.01, rows),
            "city": "San Francisco",
        }
    )
    table.loc[table.index[[1, -1]] if rows else [], "start_time"] = "not a time"
    return table


def run(pipeline, catalog: DataCatalog) -> None:
    SequentialRunner().run(pipeline, catalog)


def cleaned(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """clean_events and data_quality_report as data_processing writes them."""
    catalog = DataCatalog(
        {
            "raw_events": MemoryDataset(raw),
            "params:data_processing": MemoryDataset(PARAMS),
            "params:data_processing.column_mapping": MemoryDataset(MAPPING),
            "params:data_processing.max_rejected_fraction": MemoryDataset(0.05),
            "clean_events": MemoryDataset(),
            "data_quality_report": MemoryDataset(),
        }
    )
    run(data_processing(), catalog)
    return catalog.load("clean_events"), catalog.load("data_quality_report")


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, dict]:
    return cleaned(raw_rides())


def recent_catalog(recent: OptionalCSVDataset, clean: pd.DataFrame, root: Path) -> DataCatalog:
    return DataCatalog(
        {
            "recent_raw_events": recent,
            "clean_events": MemoryDataset(clean),
            "params:data_processing": MemoryDataset(PARAMS),
            "params:data_processing.column_mapping": MemoryDataset(MAPPING),
            "params:monitoring.recent_max_rejected_fraction": MemoryDataset(1.0),
            "recent_clean_events": MemoryDataset(),
            "recent_data_quality_report": MemoryDataset(),
            "recent_window": MemoryDataset(),
            # no ingestion has run: no record, an empty event history
            "ingestion_record": OptionalJSONDataset(filepath=str(root / "absent.json")),
            "event_history": EventHistoryDataset(
                path=str(root / "event_history"), dataset={"type": PARQUET}
            ),
        }
    )


def test_without_a_batch_file_the_newest_week_is_cleaned_again_unchanged(
    history, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clean, _ = history
    catalog = recent_catalog(
        OptionalCSVDataset(filepath=str(tmp_path / "absent.csv")), clean, tmp_path
    )
    with caplog.at_level(logging.INFO):
        run(clean_recent_events(), catalog)
    recent = catalog.load("recent_clean_events")
    expected = newest_week(clean)
    pd.testing.assert_frame_equal(
        recent.drop(columns=SOURCE_ROW), expected.drop(columns=SOURCE_ROW)
    )
    span = recent[EVENT_TIME].max() - recent[EVENT_TIME].min()
    assert pd.Timedelta(days=6) < span < pd.Timedelta(days=7)
    assert 0 < len(recent) < len(clean)
    window = catalog.load("recent_window")
    assert window["source"] == NEWEST_WEEK and window["rows"] == len(recent)
    assert window["why"] == "recent_raw_events is absent"
    report = catalog.load("recent_data_quality_report")
    assert report["rows_in"] == len(recent) and report["rejected_fraction"] == 0
    (line,) = [
        r.getMessage() for r in caplog.records if "No separate recent batch" in r.getMessage()
    ]
    assert f"({len(recent):,} events)" in line and "newest week of clean_events" in line


def test_a_batch_file_is_the_recent_window(history, tmp_path: Path) -> None:
    clean, _ = history
    batch = raw_rides(300)
    path = tmp_path / "recent.csv"
    batch.to_csv(path, index=False)
    catalog = recent_catalog(OptionalCSVDataset(filepath=str(path)), clean, tmp_path)
    run(clean_recent_events(), catalog)
    assert catalog.load("recent_window") == {"source": RECENT_BATCH, "rows": 300}
    assert catalog.load("recent_data_quality_report")["rows_in"] == 300
    assert len(catalog.load("recent_clean_events")) == 300 - 2  # its own bad rows rejected


def test_an_empty_batch_counts_as_none(history) -> None:
    clean, _ = history
    batch, window = choose_recent_batch(raw_rides(0), clean, MAPPING)
    assert window["source"] == NEWEST_WEEK and window["why"] == "recent_raw_events is empty"
    assert list(batch.columns) == ["start_time", "latitude", "longitude"]


def test_no_history_and_no_batch_is_a_clear_error(history) -> None:
    clean, _ = history
    with pytest.raises(ValueError, match="nothing to monitor"):
        choose_recent_batch(None, clean.iloc[:0], MAPPING)


def test_a_source_column_feeding_two_canonical_ones_appears_once(history) -> None:
    clean, _ = history
    both = MAPPING | {"restaurant_lat": "latitude"}
    table = in_source_columns(clean.assign(restaurant_lat=clean[EVENT_LAT]), both)
    assert list(table.columns) == ["start_time", "latitude", "longitude"]
    assert table["longitude"].equals(clean[EVENT_LON])


def test_data_quality_is_not_compared_on_the_history_s_own_week(history) -> None:
    clean, report = history
    recent = {"rows_in": 500, "rejected_fraction": 0.0, "rejected_by_reason": {}}
    params = {"thresholds": {"reject_share_increase_pp": 2.0}}
    skipped = compare_data_quality(report, recent, params, {"source": NEWEST_WEEK})
    assert skipped["by_reason"] == {} and "not compared" in skipped["note"]
    compared = compare_data_quality(report, recent, params, {"source": RECENT_BATCH})
    assert (
        set(compared["by_reason"]) == set(report["rejected_by_reason"]) and "note" not in compared
    )


def test_the_run_summary_names_the_same_source() -> None:
    assert run_summary.NEWEST_WEEK == NEWEST_WEEK
