"""Point events for model tests: one place's events from its counts per hour."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME, VENUE_ID, VENUE_LAT, VENUE_LON


def place_events(
    hours: pd.DatetimeIndex,
    counts: np.ndarray,
    place: tuple[float, float, int],
    rng: np.random.Generator,
    *,
    spread_in_hour: bool = False,
) -> pd.DataFrame:
    """``counts[j]`` events in ``hours[j]`` around ``place`` (lat, lon, venue id), ~10 m apart;
    at the hour's start, or (``spread_in_hour``) at a random second within it."""
    lat, lon, venue = place
    times = np.repeat(hours, counts)
    if spread_in_hour:
        times = times + pd.to_timedelta(rng.integers(0, 3600, counts.sum()), "s")
    n = int(counts.sum())
    return pd.DataFrame(
        {
            EVENT_TIME: times,
            EVENT_LAT: lat + rng.normal(0, 1e-4, n),
            EVENT_LON: lon + rng.normal(0, 1e-4, n),
            VENUE_LAT: lat,
            VENUE_LON: lon,
            VENUE_ID: venue,
        }
    )
