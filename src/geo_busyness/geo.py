"""Geo maths shared by the pipelines: distances and stable ids from coordinates (vectorised)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Earth radius used by the reference notebook's Haversine distance, in km.
EARTH_RADIUS_KM = 6372.8

# A venue id packs its coordinates rounded to 1e-5 degrees (about 1 m) into one int64:
# exact, reversible and the same on every run, unlike a salted hash.
_ID_SCALE = 100_000
_LON_SPAN = 360 * _ID_SCALE + 1


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (array-like, broadcast)."""
    lat1, lon1, lat2, lon2 = (
        np.radians(np.asarray(a, dtype=float)) for a in (lat1, lon1, lat2, lon2)
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def euclidean_deg(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Straight-line distance in degrees, as the reference notebook's ``dist_to_restaurant``."""
    return np.hypot(np.asarray(lat2, dtype=float) - lat1, np.asarray(lon2, dtype=float) - lon1)


def venue_id(lat: pd.Series, lon: pd.Series) -> pd.Series:
    """Stable int64 id of a venue from its coordinates; null where either coordinate is null."""
    lat_units = np.round((lat.to_numpy(dtype=float) + 90) * _ID_SCALE)
    lon_units = np.round((lon.to_numpy(dtype=float) + 180) * _ID_SCALE)
    packed = lat_units * _LON_SPAN + lon_units
    missing = np.isnan(packed)
    ids = np.where(missing, 0, packed).astype(np.int64)
    return pd.Series(pd.arrays.IntegerArray(ids, missing), index=lat.index, name="restaurant_id")
