"""data_processing run in memory (SequentialRunner, MemoryDatasets) on a tiny generated city."""

from __future__ import annotations

from typing import Any

import pandas as pd

from geo_busyness.schemas import CANONICAL_COLUMNS


def test_every_raw_row_is_clean_or_quarantined_with_a_reason(
    processed_in_memory: dict[str, Any], tiny_raw_events: pd.DataFrame
) -> None:
    clean = processed_in_memory["clean_events"]
    rejected = processed_in_memory["rejected_events"]
    assert len(clean) + len(rejected) == len(tiny_raw_events)
    assert 0 < len(rejected) < 0.05 * len(tiny_raw_events)
    assert rejected["reject_reason"].notna().all()
    assert set(CANONICAL_COLUMNS) <= set(clean.columns)
    assert clean["courier_location_timestamp"].dt.tz is not None


def test_the_quality_report_counts_what_was_rejected(processed_in_memory: dict[str, Any]) -> None:
    report = processed_in_memory["data_quality_report"]
    rejected = processed_in_memory["rejected_events"]
    counts = rejected["reject_reason"].astype(str).value_counts().to_dict()
    assert report["rows_rejected"] == len(rejected)
    assert {k: v for k, v in report["rejected_by_reason"].items() if v} == counts
