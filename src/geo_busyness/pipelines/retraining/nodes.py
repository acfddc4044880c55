"""The newest data for a retrain: the raw history with the recent batch appended, and the
ingested batches (the ``ingestion`` pipeline's event history) when there are any."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.schemas import LINE_FAULT, LINE_TEXT, ORDER_NUMBER, TIMESTAMP_COLUMNS

logger = logging.getLogger(__name__)


def check_same_columns(history: Sequence[str], recent: Sequence[str]) -> None:
    """Both batches must come in the same source schema."""
    missing = sorted(set(history) ^ set(recent))
    if missing:
        raise ValueError(
            f"recent_raw_events and raw_events must have the same columns; only one of them has"
            f" {missing}. Map both batches with the same source schema."
        )


def combine_event_batches(history: pd.DataFrame, recent: pd.DataFrame | None) -> pd.DataFrame:
    """``history`` with the rows of ``recent`` it does not already hold, appended.

    A recent row identical in every column to a history row is the same record delivered
    twice (a batch appended to the history before the job ran); other duplicates are left to
    the cleaning's ``duplicate_order`` rule, which quarantines them with their reason.
    """
    if recent is None:  # no recent batch stored (a user's own data): the history alone
        logger.info("No recent batch (recent_raw_events is absent): retraining on raw_events alone")
        return history
    # A raw file with unreadable lines carries the parser's two fault columns; the other may not.
    for column in (LINE_FAULT, LINE_TEXT):
        if (column in history) != (column in recent):
            history, recent = (
                f if column in f else f.assign(**{column: None}) for f in (history, recent)
            )
    check_same_columns(history.columns, recent.columns)
    recent = recent[list(history.columns)]
    known = pd.util.hash_pandas_object(history, index=False)
    fresh = ~pd.util.hash_pandas_object(recent, index=False).isin(known).to_numpy()
    logger.info(
        "Retraining on %d history rows + %d recent rows (%d recent rows already in the history)",
        len(history),
        int(fresh.sum()),
        int((~fresh).sum()),
    )
    return pd.concat([history, recent[fresh]], ignore_index=True)


def ingested_in_source_columns(
    clean: pd.DataFrame, column_mapping: dict[str, str | None], timestamp_format: str, timezone: str
) -> pd.DataFrame:
    """Clean (canonical) rows under the source's column names, times written as the source
    writes them, so the cleaning reads them as it reads the raw history: ISO 8601 with their
    UTC offset (an instant), else local time in ``timestamp_format``."""
    columns = {}
    for canonical, source in column_mapping.items():
        if not source or source in columns:
            continue
        values = clean[canonical]
        if canonical in TIMESTAMP_COLUMNS:
            if timestamp_format == "ISO8601":
                values = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
            else:
                values = values.dt.tz_convert(timezone).dt.strftime(timestamp_format)
        columns[source] = values.to_numpy()
    return pd.DataFrame(columns)


def ingested_events(event_history: dict[str, Callable[[], pd.DataFrame]]) -> pd.DataFrame | None:
    """Every row of the event history (``ingestion`` pipeline), None when it has none."""
    if not event_history:
        return None
    return pd.concat([event_history[key]() for key in sorted(event_history)], ignore_index=True)


def combine_with_ingested(
    history: pd.DataFrame,
    recent: pd.DataFrame | None,
    event_history: dict[str, Callable[[], pd.DataFrame]],
    cleaning: dict[str, Any],
) -> pd.DataFrame:
    """``combine_event_batches`` (history + recent batch), then every ingested batch's rows
    whose order is not in it already.

    An order number names one order: an ingested row whose order is in the raw history or the
    recent batch (the same week landed twice, a batch appended to the history file) is that
    order again, and is left out. A source without order numbers has no such key: its ingested
    rows are all appended.
    """
    combined = combine_event_batches(history, recent)
    ingested = ingested_events(event_history)
    if ingested is None:
        return combined
    mapping = cleaning["column_mapping"]
    rows = ingested_in_source_columns(
        ingested, mapping, cleaning["timestamp_format"], cleaning["source_timezone"]
    )
    order = mapping.get(ORDER_NUMBER)
    if order:
        known = combined[order].dropna().astype(str).unique()
        fresh = ~rows[order].astype(str).isin(known).to_numpy()
    else:
        fresh = np.ones(len(rows), dtype=bool)
    logger.info(
        "Retraining on the ingested history too: %d of its %d rows (%d already in the history"
        " or the recent batch, by order number)",
        int(fresh.sum()),
        len(rows),
        int((~fresh).sum()),
    )
    return pd.concat([combined, rows[fresh]], ignore_index=True)
