"""Shared inputs for the data_processing tests: the project's parameters and a ride-pickup table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

PARAMS_FILE = (
    Path(__file__).resolve().parents[3] / "conf" / "base" / "parameters_data_processing.yml"
)

#: A ride-pickup table (Uber-style, New York) needs only a time and a place.
RIDE_COLUMN_MAPPING = {
    "courier_location_timestamp": "Date/Time",
    "courier_lat": "Lat",
    "courier_lon": "Lon",
    "courier_id": None,
    "order_number": None,
    "order_created_timestamp": None,
    "restaurant_lat": None,
    "restaurant_lon": None,
}
RIDE_PARAMS = {
    "column_mapping": RIDE_COLUMN_MAPPING,
    "source_timezone": "America/New_York",
    "timestamp_format": "%m/%d/%Y %H:%M:%S",
}
RIDE_ROWS = 40


def processing_params(**overrides: Any) -> dict[str, Any]:
    """The project's data_processing parameters, with overrides."""
    params = yaml.safe_load(PARAMS_FILE.read_text())["data_processing"]
    return {**params, **overrides}


def make_ride_table() -> pd.DataFrame:
    """Pickups in April 2014, written the way the public Uber files write them."""
    rng = np.random.default_rng(2014)
    times = pd.Timestamp("2014-04-01 00:11:00") + pd.to_timedelta(
        np.sort(rng.integers(0, 30 * 24 * 3600, RIDE_ROWS)) // 60 * 60, unit="s"
    )
    stamps = [f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}:{t.second:02d}" for t in times]
    stamps[0] = "4/1/2014 0:11:00"
    return pd.DataFrame(
        {
            "Date/Time": stamps,
            "Lat": np.round(40.75 + rng.normal(0, 0.03, RIDE_ROWS), 4),
            "Lon": np.round(-73.98 + rng.normal(0, 0.03, RIDE_ROWS), 4),
            "Base": rng.choice(["B02512", "B02598", "B02617"], RIDE_ROWS),
        }
    )


@pytest.fixture
def ride_table() -> pd.DataFrame:
    return make_ride_table()
