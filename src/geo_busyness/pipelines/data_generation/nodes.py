"""Synthetic courier pings for a city: clustered restaurants, daily rhythms, noise and dirt.

There is no public copy of the reference courier data, so this generator stands in for it.
Everything is drawn with numpy arrays (one array per column, never a Python object per row),
so 10M events take seconds.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.schemas import (
    COURIER_ID,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    ORDER_CREATED,
    ORDER_NUMBER,
    VENUE_LAT,
    VENUE_LON,
)

logger = logging.getLogger(__name__)

_METRES_PER_DEGREE_LAT = 111_320.0
_WEEKDAY_FACTOR = np.array([0.85, 0.9, 0.95, 1.0, 1.25, 1.35, 1.15])  # Monday first
#: The cleaning reason each injected fault must be quarantined with.
FAULT_TO_REASON = {
    "missing_value": "missing_value",
    "coordinates_out_of_range": "coordinates_out_of_range",
    "swapped_coordinates": "coordinates_out_of_range",
    "unparsable_timestamp": "unparsable_timestamp",
    "future_timestamp": "future_timestamp",
    "ping_before_order_creation": "ping_before_order_creation",
    "duplicate_order": "duplicate_order",
}
_GARBAGE_TIMESTAMPS = np.array(
    ["not a timestamp", "2026-02-30 12:00:00", "31/31/2026 99:99", "yesterday"]
)


def make_restaurants(params: dict[str, Any], rng: np.random.Generator) -> pd.DataFrame:
    """Restaurants clustered in districts of different popularity and lunch/dinner mix."""
    city = params["city"]
    n_districts, n_restaurants = params["n_districts"], params["n_restaurants"]
    lat_span, lon_span = city["lat_max"] - city["lat_min"], city["lon_max"] - city["lon_min"]
    centre_lat = city["lat_min"] + lat_span * rng.uniform(0.15, 0.85, n_districts)
    centre_lon = city["lon_min"] + lon_span * rng.uniform(0.15, 0.85, n_districts)
    district_weight = rng.dirichlet(np.full(n_districts, 2.0))
    district = rng.choice(n_districts, size=n_restaurants, p=district_weight)
    spread = params["district_spread_deg"]
    lat = np.clip(
        centre_lat[district] + rng.normal(0, spread, n_restaurants),
        city["lat_min"],
        city["lat_max"],
    )
    lon = np.clip(
        centre_lon[district] + rng.normal(0, spread * 1.5, n_restaurants),
        city["lon_min"],
        city["lon_max"],
    )
    district_popularity = rng.lognormal(0.0, 0.6, n_districts)
    popularity = district_popularity[district] * rng.lognormal(0.0, 0.8, n_restaurants)
    return pd.DataFrame(
        {
            "district": district,
            VENUE_LAT: lat,
            VENUE_LON: lon,
            "popularity": popularity,
            # Downtown districts lean to lunch, residential ones to dinner.
            "lunch_share": rng.uniform(0.25, 0.75, n_districts)[district],
        }
    )


def _peak(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def hourly_intensity(
    restaurants: pd.DataFrame,
    hour_starts: pd.DatetimeIndex,
    params: dict[str, Any],
    rng: np.random.Generator,
) -> np.ndarray:
    """Expected orders per restaurant (rows) and hour (columns), before overdispersed noise."""
    demand = params["demand"]
    hour = hour_starts.hour.to_numpy() + 0.5
    weekday = hour_starts.day_of_week.to_numpy()
    weekend = weekday >= 5
    lunch = np.where(weekend, _peak(hour, 12.75, 1.6), _peak(hour, 12.25, 1.0))
    dinner = _peak(hour, 18.5, 1.4)
    background = demand["night_level"] + 0.1 * _peak(hour, 22.5, 1.5)
    share = restaurants["lunch_share"].to_numpy()[:, None]
    shape = 2 * (share * lunch + (1 - share) * dinner) + background
    day_index = ((hour_starts - hour_starts[0]).days).to_numpy()
    n_days = day_index.max() + 1
    sigma = demand["day_shock_sigma"]
    city_shock = rng.lognormal(-(sigma**2) / 2, sigma, n_days)[day_index]
    district_shock = rng.lognormal(
        -(sigma**2) / 8, sigma / 2, (restaurants["district"].max() + 1, n_days)
    )
    trend = np.exp(demand["trend_per_week"] * day_index / 7)
    temporal = _WEEKDAY_FACTOR[weekday] * city_shock * trend
    spatial = restaurants["popularity"].to_numpy()[:, None]
    return (
        spatial
        * shape
        * temporal
        * district_shock[restaurants["district"].to_numpy()][:, day_index]
    )


def sample_events(
    restaurants: pd.DataFrame,
    hour_starts: pd.DatetimeIndex,
    intensity: np.ndarray,
    params: dict[str, Any],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Negative-binomial order counts per restaurant-hour, expanded to one ping per order."""
    mu = intensity * (params["n_events"] / intensity.sum())
    shape = params["demand"]["dispersion"]
    counts = rng.negative_binomial(shape, shape / (shape + mu))
    restaurant_idx = np.repeat(
        np.repeat(np.arange(len(restaurants)), len(hour_starts)), counts.ravel()
    )
    hour_idx = np.repeat(np.tile(np.arange(len(hour_starts)), len(restaurants)), counts.ravel())
    n = len(restaurant_idx)
    logger.info(
        "Sampled %s orders from %s restaurants over %s hours",
        f"{n:,}",
        len(restaurants),
        len(hour_starts),
    )

    created = hour_starts.to_numpy()[hour_idx] + rng.integers(0, 3600, n).astype("timedelta64[s]")
    low, high = params["pickup_delay_minutes"]
    ping = created + rng.integers(low * 60, high * 60, n).astype("timedelta64[s]")
    venue_lat = restaurants[VENUE_LAT].to_numpy()[restaurant_idx]
    venue_lon = restaurants[VENUE_LON].to_numpy()[restaurant_idx]
    jitter = params["ping_jitter_m"] / _METRES_PER_DEGREE_LAT
    courier_weight = rng.lognormal(0, 0.7, params["n_couriers"])
    order = np.argsort(ping, kind="stable")
    events = (
        pd.DataFrame(
            {
                COURIER_ID: rng.choice(
                    params["n_couriers"], size=n, p=courier_weight / courier_weight.sum()
                )
                + 1000,
                ORDER_NUMBER: 0,
                EVENT_TIME: ping,
                EVENT_LAT: venue_lat + rng.normal(0, jitter, n),
                EVENT_LON: venue_lon + rng.normal(0, jitter, n) / np.cos(np.radians(venue_lat)),
                ORDER_CREATED: created,
                VENUE_LAT: venue_lat,
                VENUE_LON: venue_lon,
            }
        )
        .iloc[order]
        .reset_index(drop=True)
    )
    events[ORDER_NUMBER] = np.arange(n, dtype=np.int64) + 10_000_000
    return events


def inject_faults(
    events: pd.DataFrame, params: dict[str, Any], rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spoil a share of rows, one fault each, and label them by their row in the output."""
    mix = params["dirty_mix"]
    kinds = list(mix)
    weights = np.array([mix[k] for k in kinds], dtype=float)
    n_dirty = round(params["dirty_fraction"] * len(events))
    per_kind = dict(zip(kinds, rng.multinomial(n_dirty, weights / weights.sum()), strict=True))
    n_in_place = n_dirty - per_kind.get("duplicate_order", 0)
    chosen = rng.choice(len(events), size=n_dirty, replace=False)
    in_place, duplicate_sources = chosen[:n_in_place], chosen[n_in_place:]

    # Timestamps leave the generator as text: the form the raw export has, and the only form
    # that can carry an unparsable value. `assign` is a lazy copy (pandas copy-on-write): only
    # the columns that get spoiled are copied.
    out = events.assign(
        **{
            col: np.datetime_as_string(events[col].to_numpy().astype("datetime64[s]"), unit="s")
            for col in (EVENT_TIME, ORDER_CREATED)
        }
    )
    labels, start = [], 0
    for kind in kinds:
        if kind == "duplicate_order":
            continue
        rows = in_place[start : start + per_kind[kind]]
        start += per_kind[kind]
        _spoil(out, rows, kind, rng)
        labels.append(pd.DataFrame({"source_row": rows, "fault": kind}))
    # Re-sent records: exact copies of valid rows, arriving after the originals.
    copies = np.arange(len(out), len(out) + len(duplicate_sources))
    labels.append(pd.DataFrame({"source_row": copies, "fault": "duplicate_order"}))
    out = pd.concat([out, out.iloc[duplicate_sources]], ignore_index=True)
    fault_labels = (
        pd.concat(labels, ignore_index=True)
        .astype({"source_row": np.int64, "fault": str})
        .sort_values("source_row", ignore_index=True)
    )
    return out, fault_labels


def _spoil(events: pd.DataFrame, rows: np.ndarray, kind: str, rng: np.random.Generator) -> None:
    """Apply one kind of fault to the given rows, in place."""
    if len(rows) == 0:
        return
    idx = events.index[rows]
    if kind == "missing_value":
        columns = np.array([EVENT_TIME, EVENT_LAT, EVENT_LON, ORDER_CREATED, VENUE_LAT, VENUE_LON])
        picked = rng.choice(columns, size=len(rows))
        for col in columns:
            events.loc[idx[picked == col], col] = (
                None if col in (EVENT_TIME, ORDER_CREATED) else np.nan
            )
    elif kind == "coordinates_out_of_range":
        events.loc[idx, EVENT_LAT] = rng.choice([-1, 1], len(rows)) * rng.uniform(
            91, 180, len(rows)
        )
    elif kind == "swapped_coordinates":
        events.loc[idx, [EVENT_LAT, EVENT_LON]] = events.loc[idx, [EVENT_LON, EVENT_LAT]].to_numpy()
    elif kind == "unparsable_timestamp":
        events.loc[idx, EVENT_TIME] = rng.choice(_GARBAGE_TIMESTAMPS, len(rows))
    elif kind in ("future_timestamp", "ping_before_order_creation"):
        ping = pd.to_datetime(events.loc[idx, EVENT_TIME])
        created = pd.to_datetime(events.loc[idx, ORDER_CREATED])
        if kind == "future_timestamp":
            ping, created = ping + pd.DateOffset(years=75), created + pd.DateOffset(years=75)
        else:
            ping = created - pd.to_timedelta(rng.integers(60, 1800, len(rows)), unit="s")
        events.loc[idx, EVENT_TIME] = ping.dt.strftime("%Y-%m-%dT%H:%M:%S")
        events.loc[idx, ORDER_CREATED] = created.dt.strftime("%Y-%m-%dT%H:%M:%S")
    else:
        raise ValueError(
            f"Unknown fault kind {kind!r} in data_generation.dirty_mix; known: {sorted(FAULT_TO_REASON)}"
        )


def generate_events(params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Generate raw courier pings, the labels of the injected faults and a summary of both."""
    unknown = set(params["dirty_mix"]) - set(FAULT_TO_REASON)
    if unknown:
        raise ValueError(
            f"Unknown fault kind(s) {sorted(unknown)} in data_generation.dirty_mix; known: {sorted(FAULT_TO_REASON)}"
        )
    rng = np.random.default_rng(params["seed"])
    hour_starts = pd.date_range(params["start"], periods=params["weeks"] * 7 * 24, freq="h")
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
