"""Which events monitoring judges: the newest ingested batch, else the separate recent batch,
else the newest week of the history.

When the ingestion pipeline has run (its record lists an appended batch), the window is the
batch with the newest events, read from the event history: the batch's own clean rows, counted
as they came, whatever the model already holds for those hours. Without ingestion, the
generator's recent batch (``recent_raw_events``) is judged; a user's own table comes as one
history, and then the newest week of ``clean_events`` is. Rows that were cleaned already (an
ingested batch, the newest week) go through the same recent cleaning, handed over in the
source's own column names (the column mapping read backwards), so the rest of the pipeline is
the same in every case; they pass again. An ingested batch's data quality is its own, from the
record; the newest week's rejected rows are in the history's report, so that comparison is
skipped (``compare_data_quality`` reads ``source``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from geo_busyness.schemas import EVENT_TIME

logger = logging.getLogger(__name__)

#: Where the judged events come from.
RECENT_BATCH = "recent_raw_events"
NEWEST_WEEK = "newest_week_of_clean_events"
NEWEST_INGESTED = "newest_ingested_batch"
#: A record entry whose rows are in the event history (``ingestion`` pipeline).
_APPENDED = "appended"
#: The span of the history judged when there is no separate batch.
NEWEST_SPAN = pd.Timedelta(days=7)


def newest_week(clean_events: pd.DataFrame) -> pd.DataFrame:
    """The clean events of the last ``NEWEST_SPAN`` before the hour after the last event."""
    if clean_events.empty:
        raise ValueError(
            "clean_events has no rows, and there is no recent batch (recent_raw_events) either:"
            " nothing to monitor. Run `kedro run` on your data first."
        )
    times = clean_events[EVENT_TIME]
    end = times.max().floor("h") + pd.Timedelta(hours=1)
    return clean_events.loc[times >= end - NEWEST_SPAN].reset_index(drop=True)


def in_source_columns(events: pd.DataFrame, column_mapping: dict[str, str | None]) -> pd.DataFrame:
    """Canonical events under the source's column names (the mapping read backwards), so the
    recent cleaning maps them exactly as it maps a recent batch. A source column that feeds
    two canonical ones takes either's values: both were read from it the same way."""
    mapped = {source: events[canonical] for canonical, source in column_mapping.items() if source}
    return pd.DataFrame(mapped).reset_index(drop=True)


def newest_ingested_batch(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record entry of the appended batch with the newest event (latest ingestion on a
    tie); None when nothing was ingested."""
    entries = [
        entry
        for entry in (record or {}).get("batches", {}).values()
        if entry.get("status") == _APPENDED and entry.get("last_event_utc")
    ]
    if not entries:
        return None
    return max(
        entries, key=lambda e: (pd.Timestamp(e["last_event_utc"]), str(e.get("ingested_at")))
    )


def ingested_rows(
    entry: dict[str, Any], event_history: dict[str, Callable[[], pd.DataFrame]]
) -> pd.DataFrame:
    """The batch's clean rows, from the history partitions its record entry names."""
    missing = [key for key in entry["partitions"] if key not in event_history]
    if missing:
        raise ValueError(
            f"The ingestion record lists partition(s) {missing[:3]} of batch {entry['name']!r}"
            " that the event history does not hold: run `kedro run --pipelines ingestion`"
            " again, or restore the history."
        )
    rows = pd.concat([event_history[key]() for key in entry["partitions"]], ignore_index=True)
    return rows.sort_values(EVENT_TIME, kind="stable", ignore_index=True)


def known_events(
    clean_events: pd.DataFrame,
    ingestion_record: dict[str, Any] | None = None,
    event_history: dict[str, Callable[[], pd.DataFrame]] | None = None,
) -> pd.DataFrame:
    """``clean_events`` and, after its newest event, every appended batch's clean rows: the
    events that fill the hours between the model's origin and the recent window (without
    them, ingested weeks the model was not trained on would count as zero events, pulling the
    expected level down and its day-to-day variance up)."""
    entries = [
        entry
        for entry in (ingestion_record or {}).get("batches", {}).values()
        if entry.get("status") == _APPENDED and entry.get("partitions")
    ]
    if not entries or clean_events.empty:
        return clean_events
    newest = clean_events[EVENT_TIME].max()
    later = [
        rows.loc[rows[EVENT_TIME] > newest, clean_events.columns.intersection(rows.columns)]
        for rows in (ingested_rows(entry, event_history or {}) for entry in entries)
    ]
    return pd.concat([clean_events, *later], ignore_index=True)


def _ingested_window(entry: dict[str, Any], rows: pd.DataFrame) -> dict[str, Any]:
    """What the report says of an ingested batch, with its own data quality from the record."""
    rejected = entry["rows_rejected"]
    return {
        "source": NEWEST_INGESTED,
        "batch": entry["name"],
        "digest": entry["digest"],
        "rows": len(rows),
        "start_utc": pd.Timestamp(rows[EVENT_TIME].min()).isoformat(),
        "end_utc": pd.Timestamp(rows[EVENT_TIME].max()).isoformat(),
        "ingested_at": entry.get("ingested_at"),
        "data_quality": {
            "rows_in": entry["rows_in"],
            "rows_clean": entry["rows_clean"],
            "rows_rejected": rejected,
            "rejected_fraction": rejected / entry["rows_in"] if entry["rows_in"] else 0.0,
            "rejected_by_reason": dict(entry.get("rejected_by_reason", {})),
        },
    }


def choose_recent_batch(
    recent_raw: pd.DataFrame | None,
    clean_events: pd.DataFrame,
    column_mapping: dict[str, str | None],
    ingestion_record: dict[str, Any] | None = None,
    event_history: dict[str, Callable[[], pd.DataFrame]] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The raw rows the recent cleaning gets, and where they come from.

    The newest ingested batch when ``ingestion_record`` lists one; else ``recent_raw``, which
    is ``None`` when nothing is stored at the batch's path (``datasets.OptionalCSVDataset``)
    and counts as none without rows; else the newest week of ``clean_events``.
    """
    entry = newest_ingested_batch(ingestion_record)
    if entry is not None:
        rows = ingested_rows(entry, event_history or {})
        window = _ingested_window(entry, rows)
        logger.info(
            "Monitoring judges the newest ingested batch %s: %s clean events, %s .. %s UTC",
            entry["name"],
            f"{len(rows):,}",
            window["start_utc"],
            window["end_utc"],
        )
        return in_source_columns(rows, column_mapping), window
    if recent_raw is not None and not recent_raw.empty:
        return recent_raw, {"source": RECENT_BATCH, "rows": len(recent_raw)}
    week = newest_week(clean_events)
    start, end = week[EVENT_TIME].min(), week[EVENT_TIME].max()
    why = "absent" if recent_raw is None else "empty"
    logger.info(
        "No separate recent batch (recent_raw_events is %s): monitoring judges the newest week"
        " of clean_events, %s .. %s UTC (%s events), against the model",
        why,
        start.tz_convert("UTC").strftime("%Y-%m-%d %H:%M"),
        end.tz_convert("UTC").strftime("%Y-%m-%d %H:%M"),
        f"{len(week):,}",
    )
    window = {
        "source": NEWEST_WEEK,
        "rows": len(week),
        "start_utc": start.isoformat(),
        "end_utc": end.isoformat(),
        "why": f"recent_raw_events is {why}",
    }
    return in_source_columns(week, column_mapping), window
