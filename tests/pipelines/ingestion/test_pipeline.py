"""The ingestion pipeline on real files: new batches cleaned like the history, filed by local date
and batch, idempotent, corrections in place, rejected rows quarantined, the counts state
published. Kedro's runner, no session (about a second)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.counts_state import read_counts_state
from geo_busyness.schemas import EVENT_TIME, REJECT_REASON, SOURCE_ROW, TARGET
from tests.pipelines.ingestion.batches import (
    history_files,
    history_rows,
    ingest,
    land,
    land_week,
    tiny_parameters,
    tiny_week,
)

WEEK_0, WEEK_1 = "synthetic_week_00", "synthetic_week_01"


def quarantine(root: Path, batch: str) -> pd.DataFrame:
    return pd.read_parquet(
        root / "02_intermediate" / "quarantine" / "ingestion" / f"batch={batch}.parquet"
    )


@pytest.fixture(scope="module")
def ingested_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict, dict]:
    """Two weeks landed and ingested, then the same landing ingested again (read-only)."""
    root = tmp_path_factory.mktemp("ingested")
    land_week(root, 0)
    land_week(root, 1)
    first = ingest(root)
    files = {key: frame.copy() for key, frame in history_files(root).items()}
    second = ingest(root)
    return root, first, second, files


def test_the_records_numbers_are_the_files_rows(ingested_twice) -> None:
    root, record, _, _ = ingested_twice
    for name, week in ((WEEK_0, 0), (WEEK_1, 1)):
        entry = record["batches"][name]
        stored, rejected = history_rows(root, name), quarantine(root, name)
        assert entry["status"] == "appended"
        assert entry["rows_in"] == len(tiny_week(week)) == len(stored) + len(rejected)
        assert entry["rows_clean"] == len(stored) > 0
        assert entry["rows_rejected"] == len(rejected) > 0
        assert entry["first_event_utc"] == stored[EVENT_TIME].min().isoformat()
        assert entry["last_event_utc"] == stored[EVENT_TIME].max().isoformat()
        assert entry["digest"].startswith("sha256:")
        assert sorted(entry["partitions"]) == sorted(
            key for key in history_files(root) if key.endswith(f"batch={name}")
        )
        # every stored row sits in the partition of its local date
        for key in entry["partitions"]:
            date = key.split("/")[0].removeprefix("local_date=")
            local = history_files(root)[key][EVENT_TIME].dt.tz_convert("America/Regina")
            assert (local.dt.strftime("%Y-%m-%d") == date).all()
    assert record["history_rows"] == len(history_rows(root))
    assert record["last_run"]["rows_added"] == len(history_rows(root))
    assert sorted(record["last_run"]["appended"]) == [WEEK_0, WEEK_1]


def test_rejected_rows_are_quarantined_with_their_reasons(ingested_twice) -> None:
    root, record, _, _ = ingested_twice
    rejected = quarantine(root, WEEK_0)
    reasons = rejected[REJECT_REASON].astype(str).value_counts().to_dict()
    assert record["batches"][WEEK_0]["rejected_by_reason"] == reasons
    assert {"duplicate_order", "future_timestamp", "unparsable_timestamp"} <= set(reasons)
    # numbered by their line in the batch's own file (0 = the first data line)
    raw = tiny_week(0)
    rows = rejected[SOURCE_ROW].to_numpy()
    assert (rows >= 0).all() and (rows < len(raw)).all()
    unparsable = rejected[rejected[REJECT_REASON] == "unparsable_timestamp"]
    assert (
        not pd.to_datetime(
            raw[EVENT_TIME].iloc[unparsable[SOURCE_ROW]], errors="coerce", format="ISO8601"
        )
        .notna()
        .all()
    )


def test_ingesting_the_same_landing_again_adds_nothing(ingested_twice) -> None:
    root, first, second, files = ingested_twice
    assert second["last_run"]["rows_added"] == 0
    assert sorted(second["last_run"]["unchanged"]) == [WEEK_0, WEEK_1]
    assert second["batches"] == first["batches"]
    again = history_files(root)
    assert again.keys() == files.keys()
    for key, frame in files.items():
        pd.testing.assert_frame_equal(again[key], frame)


def test_a_corrected_batch_replaces_its_own_rows_only(ingested_twice, tmp_path: Path) -> None:
    source, first, _, _ = ingested_twice
    root = shutil.copytree(source, tmp_path / "copy")
    week_1 = history_rows(root, WEEK_1)
    # the export of week 0 is redone: only its first three days, every event on them
    raw = tiny_week(0)
    times = pd.to_datetime(raw[EVENT_TIME], errors="coerce", format="ISO8601")
    kept = raw[times < times.min().normalize() + pd.Timedelta(days=3)]
    land(root, WEEK_0, kept)
    record = ingest(root)
    entry = record["batches"][WEEK_0]
    assert record["last_run"]["corrected"] == [WEEK_0]
    assert record["last_run"]["unchanged"] == [WEEK_1]
    assert entry["digest"] != first["batches"][WEEK_0]["digest"]
    assert entry["rows_in"] == len(kept)
    assert record["last_run"]["rows_replaced"] == first["batches"][WEEK_0]["rows_clean"]
    stored = history_rows(root, WEEK_0)
    assert len(stored) == entry["rows_clean"] == record["last_run"]["rows_added"]
    assert len(entry["partitions"]) <= 4  # three local days (and an overflow past midnight)
    assert sorted(k for k in history_files(root) if WEEK_0 in k) == sorted(entry["partitions"])
    pd.testing.assert_frame_equal(history_rows(root, WEEK_1), week_1)  # untouched
    assert record["history_rows"] == len(history_rows(root))


def test_a_batch_rejecting_too_much_is_refused_and_its_rows_quarantined(tmp_path: Path) -> None:
    raw = tiny_week(0).copy()
    raw.loc[raw.index[:200], "courier_lat"] = 123.0  # out of range
    land(tmp_path, "bad_export", raw)
    record = ingest(tmp_path)
    entry = record["batches"]["bad_export"]
    assert entry["status"] == "refused"
    assert "above ingestion.max_rejected_fraction=5.0%" in entry["reason"]
    assert history_files(tmp_path) == {}
    assert len(quarantine(tmp_path, "bad_export")) == entry["rows_rejected"] >= 200
    assert ingest(tmp_path)["last_run"]["unchanged"] == ["bad_export"]  # not retried as is


def test_a_batch_without_a_mapped_column_is_refused_naming_it(tmp_path: Path) -> None:
    land(tmp_path, "no_lat", tiny_week(0).drop(columns="courier_lat"))
    land_week(tmp_path, 1)
    record = ingest(tmp_path)
    assert record["batches"]["no_lat"]["status"] == "refused"
    assert "lacks the mapped column(s) ['courier_lat']" in record["batches"]["no_lat"]["reason"]
    assert record["batches"][WEEK_1]["status"] == "appended"


def test_the_counts_state_is_published_and_readable(ingested_twice) -> None:
    root, record, _, _ = ingested_twice
    state = read_counts_state(str(root / "05_model_input" / "counts_state.parquet"))
    newest = pd.Timestamp(record["batches"][WEEK_1]["last_event_utc"])
    assert state.end == newest.floor("h") + pd.Timedelta(hours=1)
    assert state.batches == (WEEK_0, WEEK_1)
    events = history_rows(root)
    weeks = tiny_parameters()["ingestion"]["counts_state_weeks"]
    window = events[events[EVENT_TIME] >= state.end - pd.Timedelta(weeks=weeks)]
    assert state.counts[TARGET].sum() == len(window) == len(events)  # two weeks < the window
    resolution = tiny_parameters()["feature_engineering"]["h3_resolution"]
    expected = count_cell_hours(window, resolution)
    assert np.array_equal(state.counts["cell"].to_numpy(), expected["cell"].to_numpy())


def test_an_empty_landing_ingests_nothing_and_publishes_no_state(tmp_path: Path) -> None:
    record = ingest(tmp_path)
    assert record["batches"] == {} and record["last_run"]["rows_added"] == 0
    assert not (tmp_path / "05_model_input" / "counts_state.parquet").exists()
    saved = json.loads((tmp_path / "03_primary" / "ingestion_record.json").read_text())
    assert saved == record
