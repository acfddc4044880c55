"""The newest data for a retrain: the raw history with the recent batch appended."""

from __future__ import annotations

import logging

import pandas as pd

logger = logging.getLogger(__name__)


def combine_event_batches(history: pd.DataFrame, recent: pd.DataFrame) -> pd.DataFrame:
    """``history`` with the rows of ``recent`` it does not already hold, appended.

    A recent row identical in every column to a history row is the same record delivered
    twice (a batch appended to the history before the job ran); other duplicates are left to
    the cleaning's ``duplicate_order`` rule, which quarantines them with their reason.
    """
    missing = sorted(set(history.columns) ^ set(recent.columns))
    if missing:
        raise ValueError(
            f"recent_raw_events and raw_events must have the same columns; only one of them has"
            f" {missing}. Map both batches with the same source schema."
        )
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
