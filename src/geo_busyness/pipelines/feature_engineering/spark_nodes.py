"""feature_engineering on Spark (`kedro run --env spark`): ``nodes.window_and_summarise_events``
as one Spark job over the clean events (cell x hour counts of every event and the per-cell
partials of all events and of the train window's, H3 through Arrow batches:
``geo_busyness.spark.h3``). The rest of the pipeline is the pandas pipeline's own nodes on these
small tables: they stay small (cells x hours, cells x restaurants) whatever the number of events.

The outputs equal the pandas node's, value for value: the windows of
``nodes.define_time_windows``, ``cell_hour_counts`` as ``nodes.count_events_per_cell_hour`` gives
it, and ``model.event_summary.EventSummary``s from which ``BusynessFeatures.fit_summary`` fits the
same statistics.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from geo_busyness.model.event_summary import (
    EventSummary,
    anchor_positions,
    first_restaurants,
    fit_window,
)
from geo_busyness.model.features import BusynessFeatures, cell_feature_params
from geo_busyness.schemas import EVENT_TIME, HOUR, TARGET
from geo_busyness.spark.h3 import sample_event_points, summarise_events

from .nodes import define_time_windows, label_windows, window_bounds

logger = logging.getLogger(__name__)
_HOUR = pd.Timedelta(hours=1)


def event_span(clean_events: DataFrame) -> pd.DataFrame:
    """The first and last clean event time (UTC), as the rows ``define_time_windows`` reads."""
    first, last = clean_events.agg(
        F.unix_micros(F.min(EVENT_TIME)), F.unix_micros(F.max(EVENT_TIME))
    ).first()
    if first is None:
        raise ValueError("There are no clean events to count.")
    times = pd.to_datetime([first, last], unit="us", utc=True).as_unit("ns")
    return pd.DataFrame({EVENT_TIME: times})


def window_and_summarise_events(
    clean_events: DataFrame, params: dict[str, Any], source_timezone: str = "UTC"
) -> tuple[dict[str, str], pd.DataFrame, EventSummary, EventSummary]:
    """Spark ``nodes.window_and_summarise_events``: the windows (from the first and last event
    time, a one-column look), then one job for the counts and both summaries' partials."""
    span = event_span(clean_events)
    windows = define_time_windows(span, params, source_timezone)
    features = BusynessFeatures(**cell_feature_params(params))
    start, end = fit_window(*window_bounds(windows, "train"))
    counts, partials, train_partials = summarise_events(
        clean_events, features.resolution, (start.value // 1000, end.value // 1000)
    )
    everything = (span[EVENT_TIME].min().floor("h"), span[EVENT_TIME].max().floor("h") + _HOUR)
    train = counts[(counts[HOUR] >= start) & (counts[HOUR] < end)].reset_index(drop=True)
    summaries = [
        EventSummary(
            found,
            window_counts,
            tuple(clean_events.columns),
            _event_points(clean_events, found, window, features),
            *fit_window(*window),
        )
        for found, window_counts, window in (
            (partials, counts, everything),
            (train_partials, train, (start, end)),
        )
    ]
    logger.info("Spark summarised %s clean events", f"{int(counts[TARGET].sum()):,}")
    return windows, label_windows(counts.copy(), windows), summaries[1], summaries[0]


def _event_points(
    clean_events: DataFrame,
    partials: pd.DataFrame,
    window: tuple[pd.Timestamp, pd.Timestamp],
    features: BusynessFeatures,
) -> np.ndarray:
    """The anchor sample of event locations in ``window`` when none of its events has a located
    restaurant (more Spark jobs: a sort of the window's points); else none."""
    if len(first_restaurants(partials)):
        return np.empty((0, 2))
    events = int(partials["events"].sum())
    positions = anchor_positions(events, features.max_anchor_points, features.random_state)
    hour = F.date_trunc("hour", F.col(EVENT_TIME))
    inside = clean_events.where((hour >= _instant(window[0])) & (hour < _instant(window[1])))
    return sample_event_points(inside, positions)


def _instant(moment: pd.Timestamp) -> Column:
    """A UTC timestamp as a Spark timestamp literal."""
    return F.timestamp_micros(F.lit(moment.value // 1000))
