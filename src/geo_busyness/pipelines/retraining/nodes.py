"""The newest data for a retrain: the raw history with the recent batch appended."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from geo_busyness.schemas import LINE_FAULT, LINE_TEXT

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
