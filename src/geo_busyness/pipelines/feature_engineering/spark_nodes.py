"""feature_engineering on Spark (`kedro run --env spark`): cell x hour counts of the clean events
as DataFrame code (H3 through Arrow batches), then the time windows and the dense panels with
this pipeline's own pandas functions: the counts, not the events, are what they read, and the
counts stay small (cells x hours) whatever the number of events.

The output tables are those of the pandas pipeline, value for value: ``cell_hour_counts`` as
``nodes.count_events_per_cell_hour`` gives it, the windows of ``nodes.define_time_windows`` and
the panels and report of ``nodes.build_panels``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from geo_busyness.model.cell_hours import hours_array
from geo_busyness.schemas import CELL, EVENT_LAT, EVENT_LON, EVENT_TIME, HOUR, TARGET
from geo_busyness.spark.h3 import count_cells_and_hours

from .nodes import build_panels, define_time_windows, label_windows


def count_cell_hours(clean_events: DataFrame, resolution: int) -> pd.DataFrame:
    """Events per (H3 cell, UTC hour), computed by Spark and collected (through Arrow):
    ``model.cell_hours.count_cell_hours``' columns and order (cell, then hour)."""
    points = clean_events.select(
        EVENT_LAT,
        EVENT_LON,
        F.unix_micros(F.date_trunc("hour", F.col(EVENT_TIME))).alias("hour_us"),
    )
    counts = count_cells_and_hours(
        points,
        lat=EVENT_LAT,
        lon=EVENT_LON,
        hour_us="hour_us",
        resolution=resolution,
        cell=CELL,
        count=TARGET,
    ).toPandas()
    cells = counts[CELL].to_numpy(dtype=np.int64).view(np.uint64)
    hours_ns = counts["hour_us"].to_numpy(dtype=np.int64) * 1000
    order = np.lexsort((hours_ns, cells))
    return pd.DataFrame(
        {
            CELL: cells[order],
            HOUR: hours_array(hours_ns[order]),
            TARGET: counts[TARGET].to_numpy(dtype=np.int64)[order],
        }
    )


def window_and_count_events(
    clean_events: DataFrame, params: dict[str, Any]
) -> tuple[dict[str, str], pd.DataFrame]:
    """The time windows and ``cell_hour_counts`` from one Spark job over the clean events.

    The windows need only the first and last event's hour, which the counts carry:
    ``nodes.define_time_windows`` floors both to the hour anyway.
    """
    counts = count_cell_hours(clean_events, params["h3_resolution"])
    if counts.empty:
        raise ValueError("There are no clean events to count.")
    span = pd.DataFrame(
        {EVENT_TIME: counts[HOUR].iloc[[counts[HOUR].argmin(), counts[HOUR].argmax()]]}
    )
    windows = define_time_windows(span.reset_index(drop=True), params)
    return windows, label_windows(counts, windows)


@dataclass(frozen=True)
class TrainCells:
    """What ``nodes.build_panels`` reads of the fitted transformer: the train window's cells
    (sorted uint64), which are the cells of the train window's counts."""

    cells_: np.ndarray


def build_panels_from_counts(
    counts: pd.DataFrame, windows: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``nodes.build_panels`` over the train cells found in the counts."""
    train_cells = np.unique(counts.loc[counts["window"] == "train", CELL].to_numpy(np.uint64))
    return build_panels(counts, TrainCells(train_cells), windows)
