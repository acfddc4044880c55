"""The synthetic city: restaurants in districts, hourly demand, orders expanded to pings."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy import signal

from geo_busyness.model.cell_hours import HOURS_PER_WEEK
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
#: Order numbers of the history start here; a later window continues after its last one.
FIRST_ORDER_NUMBER = 10_000_000
_WEEKDAY_FACTOR = np.array([0.85, 0.9, 0.95, 1.0, 1.25, 1.35, 1.15])  # Monday first


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
    first_day: int = 0,
) -> np.ndarray:
    """Expected orders per restaurant (rows) and hour (columns), before overdispersed noise.

    ``first_day`` is the day number of ``hour_starts[0]`` since the start of the history, so a
    later window continues the slow trend where the history left it.
    """
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
    persistent = ar1(rng.standard_normal(n_days), demand.get("day_shock_persistence", 0.0))
    city_shock = np.exp(-(sigma**2) / 2 + sigma * persistent)[day_index]
    district_shock = rng.lognormal(
        -(sigma**2) / 8, sigma / 2, (restaurants["district"].max() + 1, n_days)
    )
    trend = np.exp(demand["trend_per_week"] * (first_day + day_index) / 7)
    temporal = _WEEKDAY_FACTOR[weekday] * city_shock * trend
    spatial = restaurants["popularity"].to_numpy()[:, None]
    return (
        spatial
        * shape
        * temporal
        * district_shock[restaurants["district"].to_numpy()][:, day_index]
    )


def ar1(innovations: np.ndarray, persistence: float) -> np.ndarray:
    """A stationary AR(1) series with unit variance from standard-normal innovations.

    ``y[0] = e[0]``, ``y[d] = phi * y[d-1] + sqrt(1 - phi^2) * e[d]``: a level shock carries
    into the next days (weather spells, promotions) with the same day-to-day spread; phi = 0
    gives the innovations themselves.
    """
    if not 0.0 <= persistence < 1.0:
        raise ValueError(f"day_shock_persistence must be in [0, 1), got {persistence}.")
    scaled = np.sqrt(1.0 - persistence**2) * innovations
    scaled[:1] = innovations[:1]
    return signal.lfilter([1.0], [1.0, -persistence], scaled)


def expected_orders(
    intensity: np.ndarray, params: dict[str, Any], scale: float | None = None
) -> np.ndarray:
    """Mean orders per restaurant-hour: the intensity scaled to ``n_events`` (or by ``scale``)."""
    return intensity * (params["n_events"] / intensity.sum() if scale is None else scale)


def draw_order_counts(
    mu: np.ndarray, params: dict[str, Any], rng: np.random.Generator
) -> np.ndarray:
    """Negative-binomial order counts per restaurant-hour around ``mu`` (overdispersed)."""
    shape = params["demand"]["dispersion"]
    return rng.negative_binomial(shape, shape / (shape + mu))


def log_weekly_counts(counts: np.ndarray, hour_starts: pd.DatetimeIndex, label: str) -> None:
    """One progress line per generated week (plain log lines: fine off a terminal too)."""
    per_hour = counts.sum(axis=0)
    weeks = int(np.ceil(len(hour_starts) / HOURS_PER_WEEK))
    for week in range(weeks):
        part = slice(week * HOURS_PER_WEEK, (week + 1) * HOURS_PER_WEEK)
        logger.info(
            "%s week %d/%d from %s: %s orders",
            label,
            week + 1,
            weeks,
            hour_starts[part.start].date(),
            f"{int(per_hour[part].sum()):,}",
        )


def sample_events(
    restaurants: pd.DataFrame,
    hour_starts: pd.DatetimeIndex,
    intensity: np.ndarray,
    params: dict[str, Any],
    rng: np.random.Generator,
    *,
    scale: float | None = None,
    first_order_number: int = FIRST_ORDER_NUMBER,
    label: str = "history",
) -> pd.DataFrame:
    """Negative-binomial order counts per restaurant-hour, expanded to one ping per order."""
    counts = draw_order_counts(expected_orders(intensity, params, scale), params, rng)
    log_weekly_counts(counts, hour_starts, label)
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
    events[ORDER_NUMBER] = np.arange(n, dtype=np.int64) + first_order_number
    return events
