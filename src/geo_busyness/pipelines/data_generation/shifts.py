"""Changes applied to the recent window only, to exercise monitoring: all off by default.

- ``new_district``: a new cluster of restaurants where the history has none, taking a share
  of the recent demand (added on top: the old districts keep their demand).
- ``evening_demand_factor``: demand in the local ``evening_hours`` multiplied by the factor.
- ``level_factor``: all demand multiplied by the factor (a city-wide level change: a
  competitor closing, a marketing push; most cell-hours stay zero, so busyness PSI hardly moves).
- ``swapped_coordinates_share``: a courier-app bug swapping latitude and longitude on a share
  of the rows (the cleaning rejects them as ``coordinates_out_of_range`` in the Americas).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.geo import haversine_km
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, VENUE_LAT, VENUE_LON

#: Candidate centres per axis when looking for the emptiest spot of the city.
_GRID = 41


def emptiest_spot(restaurants: pd.DataFrame, city: dict[str, float]) -> tuple[float, float]:
    """The point of the city's inner 80% farthest from every restaurant (lat, lon)."""
    lat = np.linspace(city["lat_min"], city["lat_max"], _GRID)[4:-4]
    lon = np.linspace(city["lon_min"], city["lon_max"], _GRID)[4:-4]
    grid_lat, grid_lon = (axis.ravel() for axis in np.meshgrid(lat, lon, indexing="ij"))
    nearest = haversine_km(
        grid_lat[:, None],
        grid_lon[:, None],
        restaurants[VENUE_LAT].to_numpy()[None, :],
        restaurants[VENUE_LON].to_numpy()[None, :],
    ).min(axis=1)
    best = int(np.argmax(nearest))
    return float(grid_lat[best]), float(grid_lon[best])


def add_new_district(
    restaurants: pd.DataFrame,
    spec: dict[str, Any],
    params: dict[str, Any],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """``restaurants`` plus ``spec["n_restaurants"]`` new ones around ``spec["centre"]``
    ([lat, lon]; null = the emptiest spot of the city), flagged ``new_district``."""
    n_new = int(spec.get("n_restaurants", 15))
    if n_new < 1:
        raise ValueError(
            f"data_generation.shift.new_district.n_restaurants must be >= 1, got {n_new}."
        )
    centre = spec.get("centre")
    lat0, lon0 = centre if centre else emptiest_spot(restaurants, params["city"])
    spread = params["district_spread_deg"]
    new = pd.DataFrame(
        {
            "district": int(restaurants["district"].max()) + 1,
            VENUE_LAT: lat0 + rng.normal(0, spread, n_new),
            VENUE_LON: lon0 + rng.normal(0, spread * 1.5, n_new),
            "popularity": rng.lognormal(0.0, 0.8, n_new),
            "lunch_share": rng.uniform(0.25, 0.75),
        }
    )
    both = pd.concat([restaurants.assign(new_district=False), new.assign(new_district=True)])
    return both.reset_index(drop=True)


def give_new_district_its_share(
    intensity: np.ndarray, is_new: np.ndarray, share: float
) -> np.ndarray:
    """Rescale the new restaurants' rows so they hold ``share`` of the total intensity."""
    if not 0 < share < 1:
        raise ValueError(
            f"data_generation.shift.new_district.share must be in (0, 1), got {share}."
        )
    old_total, new_total = intensity[~is_new].sum(), intensity[is_new].sum()
    out = intensity.copy()
    out[is_new] *= share / (1 - share) * old_total / new_total
    return out


def scale_evening_demand(
    intensity: np.ndarray, hour_starts: pd.DatetimeIndex, factor: float, hours: list[int]
) -> np.ndarray:
    """Multiply the intensity of local hours in [hours[0], hours[1]) by ``factor``."""
    start, end = hours
    hour = hour_starts.hour.to_numpy()
    evening = (hour >= start) & (hour < end) if start <= end else (hour >= start) | (hour < end)
    return intensity * np.where(evening, factor, 1.0)[None, :]


def scale_level(intensity: np.ndarray, factor: float) -> np.ndarray:
    """Multiply the intensity of every restaurant and hour by ``factor`` (> 0)."""
    if not factor > 0:
        raise ValueError(f"data_generation.shift.level_factor must be > 0, got {factor}.")
    return intensity * factor


def swap_coordinates(
    events: pd.DataFrame, share: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Swap courier latitude and longitude on ``share`` of the rows; the rows swapped."""
    if not 0 <= share <= 1:
        raise ValueError(
            f"data_generation.shift.swapped_coordinates_share must be in [0, 1], got {share}."
        )
    rows = np.sort(rng.choice(len(events), size=round(share * len(events)), replace=False))
    lat, lon = events[EVENT_LAT].to_numpy(copy=True), events[EVENT_LON].to_numpy(copy=True)
    lat[rows], lon[rows] = events[EVENT_LON].to_numpy()[rows], events[EVENT_LAT].to_numpy()[rows]
    return events.assign(**{EVENT_LAT: lat, EVENT_LON: lon}), rows
