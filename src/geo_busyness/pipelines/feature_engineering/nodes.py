"""Split events by time, count them per cell and hour: the dense count history and panels.

Per-cell statistics are fitted on the train window only; the history and the panels cover the
train cells, and events in cells unseen in train are counted in the report instead of vanishing.
Every node after ``window_and_summarise_events`` reads only small tables (counts, summaries),
so the Spark engine replaces that node alone.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.errors import InsufficientHistoryError
from geo_busyness.model.cell_hours import (
    HOUR_NS,
    build_panel,
    count_cell_hours,
    parse_time_parameter,
    utc_hour_ns,
)
from geo_busyness.model.event_summary import (
    SUMMARY_COLUMNS,
    EventSummary,
    event_codes,
    event_values,
    fit_window,
    summarise_events,
)
from geo_busyness.model.features import (
    BusynessFeatures,
    cell_feature_params,
    reference_feature_params,
)
from geo_busyness.model.geo import cell_names, h3_cells
from geo_busyness.model.history import CountHistory, history_from_counts
from geo_busyness.schemas import CELL, EVENT_LAT, EVENT_LON, EVENT_TIME, H3_CELL, HOUR, TARGET

logger = logging.getLogger(__name__)

WINDOWS = ("train", "validation", "test")


def define_time_windows(
    clean_events: pd.DataFrame, params: dict[str, Any], source_timezone: str = "UTC"
) -> dict[str, str]:
    """Train / validation / test windows [start, end) in UTC, counted back from the data's end.

    The end is ``params["end"]`` (a naive value is read in ``source_timezone``, as the source's
    own timestamps are), else the hour after the last event; the train window starts at
    ``params["start"]`` when set (e.g. after a launch period), else at the first event.
    """
    times = clean_events[EVENT_TIME]
    end = (
        parse_time_parameter(params["end"], source_timezone, "feature_engineering.end")
        if params.get("end")
        else times.max().floor("h") + pd.Timedelta(hours=1)
    )
    test_start = end - pd.Timedelta(days=params["test_days"])
    validation_start = test_start - pd.Timedelta(days=params["validation_days"])
    train_start = times.min().floor("h")
    if params.get("start"):
        start = parse_time_parameter(params["start"], source_timezone, "feature_engineering.start")
        train_start = max(train_start, start.floor("h"))
    if train_start >= validation_start:
        raise InsufficientHistoryError(
            f"The events ({train_start} .. {end}) leave no train window before the validation "
            f"window ({params['validation_days']} d) and the test window ({params['test_days']} d)."
        )
    bounds = {
        "train_start": train_start,
        "train_end": validation_start,
        "validation_start": validation_start,
        "validation_end": test_start,
        "test_start": test_start,
        "test_end": end,
    }
    return {name: moment.isoformat() for name, moment in bounds.items()}


def window_bounds(windows: dict[str, str], name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a named window as UTC timestamps."""
    return pd.Timestamp(windows[f"{name}_start"]), pd.Timestamp(windows[f"{name}_end"])


def window_and_summarise_events(
    clean_events: pd.DataFrame, params: dict[str, Any], source_timezone: str = "UTC"
) -> tuple[dict[str, str], pd.DataFrame, EventSummary, EventSummary]:
    """Time windows, the cell-hour counts of all events, and the summaries the per-cell
    statistics are fitted from: of the train window's events and of all events (the leaky
    reference protocol's). One node and one H3 pass, so the largest table (clean_events) is
    read from storage once; the Spark engine gives the same four from one Spark job.
    """
    windows = define_time_windows(clean_events, params, source_timezone)
    features = BusynessFeatures(**cell_feature_params(params))
    summarise = partial(
        summarise_events,
        resolution=features.resolution,
        max_anchor_points=features.max_anchor_points,
        seed=features.random_state,
    )
    events = clean_events[[col for col in SUMMARY_COLUMNS if col in clean_events.columns]]
    # Cells, hours and distances once per event: the train window's events are a subset.
    cells = h3_cells(events[EVENT_LAT], events[EVENT_LON], features.resolution)
    hours = utc_hour_ns(events[EVENT_TIME])
    values = event_values(events)
    codes = event_codes(cells, values.venues)  # numbered once: the train events are a subset
    span = (pd.Timestamp(hours.min(), tz="UTC"), pd.Timestamp(hours.max() + HOUR_NS, tz="UTC"))
    everything = summarise(
        events, window=span, cells=cells, hours=hours, values=values, codes=codes
    )
    start, end = fit_window(*window_bounds(windows, "train"))
    inside = (hours >= start.value) & (hours < end.value)
    train = summarise(
        events,
        window=(start, end),
        cells=cells,
        hours=hours,
        values=values,
        where=inside,
        codes=codes,
    )
    return windows, label_windows(everything.counts.copy(), windows), train, everything


def fit_busyness_features(summary: EventSummary, params: dict[str, Any]) -> BusynessFeatures:
    """Per-cell statistics of the train window's events (distances, restaurants, clusters)."""
    return BusynessFeatures(**cell_feature_params(params)).fit_summary(summary)


def fit_reference_features(summary: EventSummary, params: dict[str, Any]) -> BusynessFeatures:
    """The leaky reference protocol's transformer: the reference notebook's features with their
    statistics over ALL events (leaky by construction; modeling reports it for comparison)."""
    return BusynessFeatures(**reference_feature_params(params)).fit_summary(summary)


def build_count_history(
    counts: pd.DataFrame,
    features: BusynessFeatures,
    windows: dict[str, str],
    source_timezone: str,
) -> CountHistory:
    """Every train cell's counts in every hour from the train start to the test end (dense).

    The forecaster reads a row's features from the hours before its origin only, so one
    history serves training, validation and the test backtest without leaking.
    """
    start, _ = window_bounds(windows, "train")
    _, end = window_bounds(windows, "test")
    return history_from_counts(counts, features.cells_, start, end, source_timezone)


def count_events_per_cell_hour(
    clean_events: pd.DataFrame, windows: dict[str, str], resolution: int
) -> pd.DataFrame:
    """Events per H3 cell and UTC hour, labelled with their window."""
    return label_windows(count_cell_hours(clean_events, resolution), windows)


def label_windows(counts: pd.DataFrame, windows: dict[str, str]) -> pd.DataFrame:
    """Cell-hour counts (``cell, hour, busyness``) with the cell's name first and the window
    last (the Spark engine labels its counts with this too)."""
    counts.insert(0, H3_CELL, cell_names(counts[CELL].to_numpy()))
    hours = counts[HOUR].array.asi8
    window_code = np.full(len(counts), -1, dtype=np.int8)  # -1: outside every window
    for code, name in enumerate(WINDOWS):
        start, end = window_bounds(windows, name)
        window_code[(hours >= start.value) & (hours < end.value)] = code
    counts["window"] = pd.Categorical.from_codes(window_code, categories=list(WINDOWS))
    return counts


def build_panels(
    counts: pd.DataFrame, features: BusynessFeatures, windows: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Dense train, validation and test panels over the train cells, and what they leave out."""
    panels, report = [], {"train_cells": len(features.cells_), "windows": {}}
    for name in WINDOWS:
        start, end = window_bounds(windows, name)
        panel = build_panel(counts, features.cells_, start, end)
        in_window = counts[(counts[HOUR] >= start) & (counts[HOUR] < end)]
        unseen = in_window[~np.isin(in_window[CELL].to_numpy(), features.cells_)]
        events = int(in_window[TARGET].sum())
        report["windows"][name] = {
            "start": windows[f"{name}_start"],
            "end": windows[f"{name}_end"],
            "hours": int(panel[HOUR].nunique()),
            "panel_rows": len(panel),
            "zero_rows_fraction": round(float((panel[TARGET] == 0).mean()), 6)
            if len(panel)
            else None,
            "events": events,
            "events_in_panel": int(panel[TARGET].sum()),
            "events_in_unseen_cells": int(unseen[TARGET].sum()),
            "unseen_cells": int(unseen[CELL].nunique()),
            "unseen_events_fraction": round(int(unseen[TARGET].sum()) / events, 6)
            if events
            else 0.0,
        }
        if len(unseen):
            logger.warning(
                "%s window: %s events in %s cell(s) unseen in train are outside the panel",
                name,
                f"{int(unseen[TARGET].sum()):,}",
                unseen[CELL].nunique(),
            )
        panels.append(panel)
    return panels[0], panels[1], panels[2], report
