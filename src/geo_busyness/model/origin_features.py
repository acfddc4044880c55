"""Features of (cell, origin, horizon) rows, each from data before the origin only.

A row asks: standing at origin ``o`` (every hour before it known), how many events will cell
``c`` have in hour ``t = o + h - 1``? Everything below reads the ``DerivedHistory`` at
positions ``< o``, so a feature computed at an origin never changes when later data changes
(``tests/model/test_origin_features.py`` checks exactly that).

- the seasonal profile: the cell's mean at the same hour of the week over all past weeks,
  shrunk toward the cell's own level x the city's weekly shape where the cell is sparse;
- level ratios: actual over profile over the last 3 h, 24 h, 7 days, 28 days and since local
  midnight, per cell and city-wide (what moves a level the profile alone cannot follow);
- lags: the same hour a day back (when the horizon allows), a week back, and the last hour,
  each as a log ratio to its profile;
- calendar in the source's local time zone, public holidays, and the horizon itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from geo_busyness.model.history import DerivedHistory

#: Level-ratio windows (hours before the origin).
RATIO_WINDOWS = (3, 24, 168, 672)
#: Pseudo-counts that keep ratios of sparse cells (and of a quiet city) near 1.
CELL_RATIO_PRIOR = 1.0
CITY_RATIO_PRIOR = 10.0
#: Hours a row needs before its origin: a week with a profile behind it.
MIN_ORIGIN = 2 * 168

ORIGIN_FEATURES = (
    "horizon_hours",
    "local_hour",
    "day_of_week",
    "is_weekend",
    "is_holiday",
    "weeks_of_history",
    "seasonal_profile",
    "shrunk_profile",
    "cell_level",
    *(f"{scope}_ratio_{w}h" for w in RATIO_WINDOWS for scope in ("cell", "city")),
    "cell_ratio_today",
    "city_ratio_today",
    "lag_24h_ratio",
    "lag_168h_ratio",
    "last_hour_ratio",
)
#: The city's actual/profile ratio over the last week: the level-adjusted baseline's factor.
LEVEL_RATIO = "city_ratio_168h"
#: Log ratios to the profile that a level-adjusted exposure restates against itself.
LEVEL_RELATIVE = tuple(name for name in ORIGIN_FEATURES if name != LEVEL_RATIO and "_ratio" in name)


def window_ratio(
    derived: DerivedHistory, rows: np.ndarray, origin: np.ndarray, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log((actual + a) / (profile + a)) over positions [first, origin), per cell and city-wide."""
    actual = derived.cum_profiled[rows, origin] - derived.cum_profiled[rows, first]
    expected = derived.cum_profile[rows, origin] - derived.cum_profile[rows, first]
    cell = np.log((actual + CELL_RATIO_PRIOR) / (expected + CELL_RATIO_PRIOR))
    return cell, np.log(city_ratio(derived, origin, first))


def city_ratio(derived: DerivedHistory, origin: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(city actual + a) / (city profile + a) over positions [first, origin): the city's level
    against its seasonal profile (the level-adjusted baseline's factor over the last week)."""
    actual = derived.city_cum_profiled[origin] - derived.city_cum_profiled[first]
    expected = derived.city_cum_profile[origin] - derived.city_cum_profile[first]
    return (actual + CITY_RATIO_PRIOR) / (expected + CITY_RATIO_PRIOR)


def _lag_ratio(
    derived: DerivedHistory, rows: np.ndarray, position: np.ndarray, expected: np.ndarray
) -> np.ndarray:
    """log((count at ``position`` + a) / (expected + a)) for each row's cell."""
    count = derived.counts[rows, np.maximum(position, 0)]
    return np.log((count + CELL_RATIO_PRIOR) / (expected + CELL_RATIO_PRIOR))


def shrunk_profile(
    derived: DerivedHistory, rows: np.ndarray, origin: np.ndarray, target: np.ndarray, weeks: float
) -> tuple[np.ndarray, np.ndarray]:
    """The cell's seasonal profile shrunk toward (cell level x city weekly shape), and the level.

    ``weeks`` is the prior's weight in weeks of data: a cell with n past weeks gets
    ``(n * own + weeks * prior) / (n + weeks)``.
    """
    origin_safe = np.maximum(origin, 1)
    level = derived.cum_counts[rows, origin_safe] / origin_safe
    city_level = derived.city_cum_counts[origin_safe] / origin_safe
    city_profile = derived.city_profile[target]
    shape = np.where(city_level > 0, city_profile / np.maximum(city_level, 1e-12), 1.0)
    prior = level * shape
    n = derived.weeks[target]
    own = np.nan_to_num(derived.profile[rows, target])
    return (n * own + weeks * prior) / (n + weeks), level


def origin_features(
    derived: DerivedHistory,
    rows: np.ndarray,
    origin: np.ndarray,
    horizon: np.ndarray,
    *,
    shrink_weeks: float,
    holidays: np.ndarray,
) -> dict[str, np.ndarray]:
    """``ORIGIN_FEATURES`` of rows (history row, origin position, horizon >= 1), as float arrays.

    ``holidays`` are local dates (days since the epoch) that are public holidays.
    """
    rows = np.asarray(rows, dtype=np.int64)
    origin = np.asarray(origin, dtype=np.int64)
    horizon = np.asarray(horizon, dtype=np.int64)
    target = origin + horizon - 1
    calendar = derived.calendar
    features: dict[str, np.ndarray] = {
        "horizon_hours": horizon.astype(float),
        "local_hour": calendar["hour"][target].astype(float),
        "day_of_week": calendar["day_of_week"][target].astype(float),
        "is_weekend": (calendar["day_of_week"][target] >= 5).astype(float),
        "is_holiday": np.isin(calendar["date"][target], holidays).astype(float),
        "weeks_of_history": derived.weeks[target].astype(float),
        "seasonal_profile": derived.profile[rows, target],
    }
    features["shrunk_profile"], features["cell_level"] = shrunk_profile(
        derived, rows, origin, target, shrink_weeks
    )
    features |= per_origin(_origin_ratios, derived, rows, origin)
    # Lags as log ratios to the profile: a raw count lets trees chase one past shock.
    profile = np.nan_to_num(features["seasonal_profile"])
    lag_24 = _lag_ratio(derived, rows, target - 24, profile)
    lag_168 = _lag_ratio(derived, rows, target - 168, profile)
    features["lag_24h_ratio"] = np.where(horizon <= 24, lag_24, np.nan)
    features["lag_168h_ratio"] = np.where((horizon <= 168) & (target >= 168), lag_168, np.nan)
    return {name: features[name] for name in ORIGIN_FEATURES}


def _origin_ratios(
    derived: DerivedHistory, rows: np.ndarray, origin: np.ndarray
) -> dict[str, np.ndarray]:
    """The features of a row that depend on its cell and origin alone: level ratios over the
    windows and since local midnight, and the last hour's ratio."""
    calendar = derived.calendar
    features = {}
    for window in RATIO_WINDOWS:
        first = np.maximum(origin - window, 0)
        cell, city = window_ratio(derived, rows, origin, first)
        features[f"cell_ratio_{window}h"], features[f"city_ratio_{window}h"] = cell, city
    last = np.maximum(origin - 1, 0)
    since_midnight = calendar["hour"][last] + 1  # hours of the origin's local day already known
    today = np.where(calendar["hour"][origin] == 0, 0, since_midnight)
    cell, city = window_ratio(derived, rows, origin, np.maximum(origin - today, 0))
    features["cell_ratio_today"] = np.where(today > 0, cell, np.nan)
    features["city_ratio_today"] = np.where(today > 0, city, np.nan)
    last_profile = np.nan_to_num(derived.profile[rows, last])
    features["last_hour_ratio"] = np.where(
        origin >= 1, _lag_ratio(derived, rows, last, last_profile), np.nan
    )
    return features


def origin_runs(rows: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Where each run of consecutive rows with the same (row, origin) starts (a backtest's or a
    training sample's horizons of one cell and origin come together)."""
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    change = np.empty(len(rows), dtype=bool)
    change[0] = True
    np.not_equal(rows[1:], rows[:-1], out=change[1:])
    change[1:] |= origin[1:] != origin[:-1]
    return np.flatnonzero(change)


def per_origin(
    compute: Callable[[DerivedHistory, np.ndarray, np.ndarray], Any],
    derived: DerivedHistory,
    rows: np.ndarray,
    origin: np.ndarray,
) -> Any:
    """``compute(derived, rows, origin)`` (an array or a dict of arrays, row by row) computed
    once per run of equal (row, origin) and repeated over the run: the same numbers, without
    recomputing the level ratios of every horizon."""
    rows, origin = np.broadcast_arrays(np.asarray(rows), np.asarray(origin))
    starts = origin_runs(rows, origin)
    if len(starts) > len(rows) // 2:  # mostly distinct: repeating would cost more than it saves
        return compute(derived, rows, origin)
    lengths = np.diff(np.append(starts, len(rows)))
    values = compute(derived, rows[starts], origin[starts])
    if isinstance(values, dict):
        return {name: np.repeat(v, lengths, axis=0) for name, v in values.items()}
    return np.repeat(values, lengths, axis=0)
