"""Synthetic courier pings for a city: clustered restaurants, daily rhythms, noise and dirt.

There is no public copy of the reference courier data, so this generator stands in for it.
Everything is drawn with numpy arrays (one array per column, never a Python object per row):
1M events take about 3 s. The city is built in ``city.py``, the dirt in ``faults.py``, the
recent window's shifts in ``shifts.py``; the two node functions are here.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import HOURS_PER_WEEK
from geo_busyness.pipelines.data_generation.city import (
    FIRST_ORDER_NUMBER,
    draw_order_counts,
    expected_orders,
    hourly_intensity,
    make_restaurants,
    sample_events,
)
from geo_busyness.pipelines.data_generation.faults import FAULT_TO_REASON, inject_faults
from geo_busyness.pipelines.data_generation.shifts import (
    add_new_district,
    give_new_district_its_share,
    scale_evening_demand,
    scale_level,
    swap_coordinates,
)
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME

__all__ = ["FAULT_TO_REASON", "generate_events", "generate_recent_events"]

logger = logging.getLogger(__name__)

#: The recent window's random stream (seeded with [seed, RECENT_STREAM]), apart from the history's.
RECENT_STREAM = 1
#: The recent-window shift settings when none are given: no shift.
NO_SHIFT: dict[str, Any] = {
    "new_district": None,
    "evening_demand_factor": 1.0,
    "evening_hours": [17, 22],
    "level_factor": 1.0,
    "swapped_coordinates_share": 0.0,
}


def history_hours(params: dict[str, Any]) -> pd.DatetimeIndex:
    """The local hour starts of the history: ``weeks`` weeks from ``start``."""
    return pd.date_range(params["start"], periods=params["weeks"] * HOURS_PER_WEEK, freq="h")


def _check_dirty_mix(params: dict[str, Any]) -> None:
    unknown = set(params["dirty_mix"]) - set(FAULT_TO_REASON)
    if unknown:
        raise ValueError(
            f"Unknown fault kind(s) {sorted(unknown)} in data_generation.dirty_mix; known: {sorted(FAULT_TO_REASON)}"
        )


def generate_events(params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Generate raw courier pings, the labels of the injected faults and a summary of both."""
    _check_dirty_mix(params)
    rng = np.random.default_rng(params["seed"])
    hour_starts = history_hours(params)
    restaurants = make_restaurants(params, rng)
    intensity = hourly_intensity(restaurants, hour_starts, params, rng)
    events = sample_events(restaurants, hour_starts, intensity, params, rng)
    raw, fault_labels = inject_faults(events, params, rng)
    injected = fault_labels["fault"].value_counts().reindex(list(params["dirty_mix"]), fill_value=0)
    summary = {
        "rows": len(raw),
        "clean_rows": len(events) - int(injected.drop("duplicate_order", errors="ignore").sum()),
        "injected": {kind: int(count) for kind, count in injected.items()},
        "expected_reasons": {kind: FAULT_TO_REASON[kind] for kind in injected.index},
        "first_hour_local": str(hour_starts[0]),
        "last_hour_local": str(hour_starts[-1]),
        "restaurants": len(restaurants),
        "seed": params["seed"],
    }
    logger.info(
        "Generated %s raw rows with %s injected faults: %s",
        f"{len(raw):,}",
        len(fault_labels),
        summary["injected"],
    )
    return raw, fault_labels, summary


def sample_queries(
    events: pd.DataFrame, n_queries: int, source_timezone: str, rng: np.random.Generator
) -> pd.DataFrame:
    """Query rows (UTC ISO timestamp, lat, lon) drawn without replacement from valid events."""
    rows = np.sort(rng.choice(len(events), size=min(n_queries, len(events)), replace=False))
    local = pd.Series(events[EVENT_TIME].to_numpy()[rows])
    utc = local.dt.tz_localize(
        source_timezone, ambiguous=np.zeros(len(rows), dtype=bool), nonexistent="shift_forward"
    ).dt.tz_convert("UTC")
    return pd.DataFrame(
        {
            EVENT_TIME: utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            EVENT_LAT: events[EVENT_LAT].to_numpy()[rows],
            EVENT_LON: events[EVENT_LON].to_numpy()[rows],
        }
    )


def generate_recent_events(
    params: dict[str, Any], source_timezone: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``recent_weeks`` right after the history, in the same city, and query rows from them.

    The city (restaurants, demand scale, couriers) is rebuilt from ``seed`` exactly as
    ``generate_events`` builds it; the recent window then draws from its own random stream, so
    the history stays the same whatever the recent settings. ``shift`` applies here only.
    Query timestamps are UTC (naive generated times are local to ``source_timezone``).
    """
    _check_dirty_mix(params)
    rng = np.random.default_rng(params["seed"])
    past = history_hours(params)
    restaurants = make_restaurants(params, rng)
    history_intensity = hourly_intensity(restaurants, past, params, rng)
    # The history's first draw, repeated: its order count, so recent order numbers follow on.
    history_orders = int(
        draw_order_counts(expected_orders(history_intensity, params), params, rng).sum()
    )
    recent_rng = np.random.default_rng([params["seed"], RECENT_STREAM])
    hours = pd.date_range(
        past[-1] + pd.Timedelta(hours=1),
        periods=params.get("recent_weeks", 1) * HOURS_PER_WEEK,
        freq="h",
    )
    shift = {**NO_SHIFT, **(params.get("shift") or {})}
    city = restaurants.assign(new_district=False)
    if shift["new_district"]:
        city = add_new_district(restaurants, shift["new_district"], params, recent_rng)
    intensity = hourly_intensity(city, hours, params, recent_rng, first_day=len(past) // 24)
    if shift["new_district"]:
        intensity = give_new_district_its_share(
            intensity, city["new_district"].to_numpy(), shift["new_district"].get("share", 0.15)
        )
    if shift["evening_demand_factor"] != 1:
        intensity = scale_evening_demand(
            intensity, hours, shift["evening_demand_factor"], shift["evening_hours"]
        )
    if shift["level_factor"] != 1:
        intensity = scale_level(intensity, shift["level_factor"])
    events = sample_events(
        city,
        hours,
        intensity,
        params,
        recent_rng,
        scale=params["n_events"] / history_intensity.sum(),
        first_order_number=FIRST_ORDER_NUMBER + history_orders,
        label="recent",
    )
    queries = sample_queries(events, params.get("n_queries", 2000), source_timezone, recent_rng)
    events, swapped = swap_coordinates(events, shift["swapped_coordinates_share"], recent_rng)
    raw, fault_labels = inject_faults(events, params, recent_rng)
    logger.info(
        "Recent window %s .. %s: %s raw rows (%s injected faults, %s swapped lat/lon), "
        "%s query rows; shift %s",
        hours[0],
        hours[-1],
        f"{len(raw):,}",
        len(fault_labels),
        f"{len(swapped):,}",
        f"{len(queries):,}",
        {key: value for key, value in shift.items() if value != NO_SHIFT[key]} or "none",
    )
    return raw, queries
