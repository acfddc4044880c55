"""Which events monitoring judges: the separate recent batch, else the newest week of the history.

Only the synthetic generator writes a recent batch (``recent_raw_events``); a user's own table
comes as one history. Without a batch, the newest week of ``clean_events`` goes through the
same recent cleaning, handed over in the source's own column names (the column mapping read
backwards), so the rest of the pipeline is the same in both cases. Those rows were cleaned
already and pass again; their rejected rows are in the history's quality report, so the data
quality comparison is skipped (``compare_data_quality`` reads ``source``).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from geo_busyness.schemas import EVENT_TIME

logger = logging.getLogger(__name__)

#: Where the judged events come from.
RECENT_BATCH = "recent_raw_events"
NEWEST_WEEK = "newest_week_of_clean_events"
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


def choose_recent_batch(
    recent_raw: pd.DataFrame | None,
    clean_events: pd.DataFrame,
    column_mapping: dict[str, str | None],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The raw rows the recent cleaning gets, and where they come from.

    ``recent_raw`` is ``None`` when nothing is stored at the batch's path
    (``datasets.OptionalCSVDataset``); a batch with no rows counts as none.
    """
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
