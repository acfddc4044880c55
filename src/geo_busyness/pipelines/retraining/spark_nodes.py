"""The newest data for a retrain on Spark: the raw history with the recent batch appended."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .nodes import check_same_columns

logger = logging.getLogger(__name__)


def combine_event_batches(history: DataFrame, recent: DataFrame) -> DataFrame:
    """``history`` with the rows of ``recent`` it does not already hold, appended (as the
    pandas node: a recent row equal to a history row in every column, nulls included, is the
    same record delivered twice).

    The recent batch is small: the history is scanned once against it, broadcast (no shuffle
    of the history), and the recent rows found there are left out. Recent columns take the
    history's types (a CSV batch beside a typed Parquet history).
    """
    columns = list(history.columns)
    check_same_columns(columns, recent.columns)
    recent = recent.select(
        *(F.col(name).cast(history.schema[name].dataType).alias(name) for name in columns)
    )
    known = (
        history.alias("h")
        .join(F.broadcast(recent.alias("r")), _same_row("h", "r", columns), "left_semi")
        .distinct()
    )
    fresh = (
        recent.alias("r")
        .join(F.broadcast(known.alias("k")), _same_row("r", "k", columns), "left_anti")
        .cache()  # small; counted here, read again by the cleaning
    )
    logger.info("Retraining on the history + %d recent rows not in it", fresh.count())
    return history.unionByName(fresh)


def _same_row(left: str, right: str, columns: list[str]):
    """Every column equal, a null matching a null."""
    condition = F.lit(True)
    for name in columns:
        condition = condition & F.col(f"{left}.`{name}`").eqNullSafe(F.col(f"{right}.`{name}`"))
    return condition
