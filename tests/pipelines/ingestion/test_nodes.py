"""The ingestion's nodes on small tables: which batches are new, whose rows are whose, what the
record says."""

from __future__ import annotations

import pandas as pd
import pytest

from geo_busyness.pipelines.ingestion.nodes import (
    batch_of_rows,
    file_batches,
    newest_end,
    select_new_batches,
    table_digest,
)
from geo_busyness.schemas import EVENT_TIME, REJECT_REASON, SOURCE_ROW

MAPPING = {"courier_location_timestamp": "t", "courier_lat": "lat", "courier_lon": "lon"}
NOW = pd.Timestamp("2026-03-09 12:00", tz="UTC")


def raw(n: int, lat: float = 50.45) -> pd.DataFrame:
    return pd.DataFrame(
        {"t": [f"2026-03-0{1 + i % 7}T10:00:00" for i in range(n)], "lat": lat, "lon": -104.6}
    )


def loaders(**frames: pd.DataFrame) -> dict:
    return {name: (lambda f=frame: f) for name, frame in frames.items()}


def test_the_digest_is_of_the_content() -> None:
    assert table_digest(raw(3)) == table_digest(raw(3).copy())
    assert table_digest(raw(3)) != table_digest(raw(3, lat=50.46))
    assert table_digest(raw(3)) != table_digest(raw(3).rename(columns={"lon": "lng"}))


def test_recorded_content_is_skipped_and_changed_content_is_a_correction() -> None:
    record = {"batches": {"a": {"digest": table_digest(raw(2))}, "b": {"digest": "sha256:old"}}}
    table, plan = select_new_batches(loaders(a=raw(2), b=raw(3), c=raw(4)), record, MAPPING)
    assert plan["unchanged"] == ["a"]
    assert [(b["name"], b["status"], b["first_row"], b["rows_in"]) for b in plan["batches"]] == [
        ("b", "corrected", 0, 3),
        ("c", "appended", 3, 4),
    ]
    assert len(table) == 7
    assert list(batch_of_rows(pd.Series([0, 2, 3, 6]), plan)) == ["b", "b", "c", "c"]


def test_nothing_new_gives_an_empty_table_in_the_sources_columns() -> None:
    record = {"batches": {"a": {"digest": table_digest(raw(2))}}}
    table, plan = select_new_batches(loaders(a=raw(2)), record, MAPPING)
    assert table.empty and list(table.columns) == ["t", "lat", "lon"]
    assert plan["batches"] == [] and plan["unchanged"] == ["a"]


def test_a_landed_name_that_cannot_name_a_batch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Landed file 'week 1'.*rename the file"):
        select_new_batches(loaders(**{"week 1": raw(1)}), None, MAPPING)


def test_files_in_folders_under_the_landing_folder_are_not_batches() -> None:
    _, plan = select_new_batches(loaders(**{"archive/a": raw(1), "b": raw(1)}), None, MAPPING)
    assert [b["name"] for b in plan["batches"]] == ["b"]


def _split(n_clean: int, n_rejected: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    clean = pd.DataFrame(
        {
            SOURCE_ROW: range(n_clean),
            EVENT_TIME: pd.date_range("2026-03-01 05:30", periods=n_clean, freq="h", tz="UTC"),
        }
    )
    rejected = pd.DataFrame(
        {
            SOURCE_ROW: range(n_clean, n_clean + n_rejected),
            REJECT_REASON: pd.Categorical(["duplicate_order"] * n_rejected),
        }
    )
    return clean, rejected


def test_each_batch_is_filed_with_its_own_numbers() -> None:
    clean, rejected = _split(40, 1)
    plan = {
        "batches": [
            {"name": "a", "digest": "sha256:1", "first_row": 0, "rows_in": 41, "status": "appended"}
        ],
        "unchanged": [],
        "refused": [],
    }
    history, quarantine, record = file_batches(
        clean, rejected, plan, None, {"max_rejected_fraction": 0.05}, "America/Regina", now=NOW
    )
    rows = history["a"]
    # 05:30 UTC is 23:30 local (UTC-6) the day before
    assert rows["local_date"].iloc[0] == "2026-02-28"
    entry = record["batches"]["a"]
    assert (entry["rows_in"], entry["rows_clean"], entry["rows_rejected"]) == (41, 40, 1)
    assert entry["rejected_by_reason"] == {"duplicate_order": 1}
    assert entry["partitions"][0] == "local_date=2026-02-28/batch=a"
    assert len(entry["partitions"]) == rows["local_date"].nunique()
    assert quarantine["batch=a"][SOURCE_ROW].tolist() == [40]
    # the newest event at 20:30: its hour counts as complete once it has ended
    assert newest_end(record, NOW) == pd.Timestamp("2026-03-02 21:00", tz="UTC")
    running = pd.Timestamp("2026-03-02 20:45", tz="UTC")
    assert newest_end(record, running) == pd.Timestamp("2026-03-02 20:00", tz="UTC")
    assert newest_end(None, NOW) is None


def test_a_refused_correction_keeps_the_earlier_rows() -> None:
    clean, rejected = _split(10, 5)
    plan = {
        "batches": [
            {
                "name": "a",
                "digest": "sha256:2",
                "first_row": 0,
                "rows_in": 15,
                "status": "corrected",
            }
        ],
        "unchanged": [],
        "refused": [],
    }
    earlier = {
        "batches": {"a": {"name": "a", "digest": "sha256:1", "status": "appended", "rows_clean": 9}}
    }
    history, quarantine, record = file_batches(
        clean, rejected, plan, earlier, {"max_rejected_fraction": 0.05}, "UTC", now=NOW
    )
    assert history == {} and len(quarantine["batch=a"]) == 5
    entry = record["batches"]["a"]
    assert entry["status"] == "appended" and entry["digest"] == "sha256:1"
    assert entry["last_refused"]["digest"] == "sha256:2"
    assert "rejected 5 of 15 rows (33.3%)" in entry["last_refused"]["reason"]
    assert record["last_run"]["refused"] == ["a"] and record["history_rows"] == 9
