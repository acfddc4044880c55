"""The one prediction path: query rows, or (cell, hour) pairs, through the busyness forecaster.

``predict_busyness`` answers query rows (a timestamp and a point); ``predict_cell_hours``
answers H3 cells in UTC hours directly, so a caller holding cells never turns them into centre
points only to have them turned back into the same cells. Both share ``_answer_pairs``: batch
inference, monitoring, the evaluation and the server all compute the same numbers: the mean
(``predicted_busyness``), P10/P50/P90 and the horizon from the model's origin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import distinct_pairs, hours_array, utc_hour_ns
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.geo import cell_centres, cell_names, h3_cells
from geo_busyness.schemas import (
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    PREDICTION,
    QUERY_COLUMNS,
)


def as_forecaster(model: Any) -> BusynessForecaster:
    """The ``BusynessForecaster`` inside ``model`` (itself, or an MLflow pyfunc's raw model)."""
    if isinstance(model, BusynessForecaster):
        return model
    if hasattr(model, "get_raw_model"):
        return as_forecaster(model.get_raw_model())
    raise TypeError(f"Expected the busyness model (a BusynessForecaster), got {type(model)}.")


def cell_hour_queries(cells: np.ndarray, hours: pd.Series) -> pd.DataFrame:
    """Query rows for (cell, hour) pairs: the hour start and the cell centre."""
    lat, lon = cell_centres(cells)
    return pd.DataFrame(
        {EVENT_TIME: pd.Series(hours).array, EVENT_LAT: lat, EVENT_LON: lon}
    ).astype({EVENT_TIME: pd.DatetimeTZDtype(unit="ns", tz="UTC")})


def predict_busyness(model: Any, queries: pd.DataFrame) -> pd.DataFrame:
    """Predicted busyness of each query's H3 cell in its UTC hour: one answer per query row.

    ``model`` is the busyness model artifact (sklearn ``Pipeline`` of ``features`` and
    ``regressor``, as loaded by ``mlflow.sklearn.load_model``, or its pyfunc wrapper).
    ``queries`` needs ``courier_location_timestamp`` (aware, naive = UTC, or ISO strings),
    ``courier_lat`` and ``courier_lon``. Returns ``h3_cell`` (hex name), ``hour`` (UTC hour
    start) and ``predicted_busyness`` (>= 0), indexed like ``queries``. Each distinct
    (cell, hour) is predicted once, from the cell centre.
    """
    forecaster = as_forecaster(model)
    missing = [col for col in QUERY_COLUMNS if col not in queries.columns]
    if missing:
        raise KeyError(f"Query rows lack column(s) {missing}; expected {list(QUERY_COLUMNS)}.")
    cells = h3_cells(queries[EVENT_LAT], queries[EVENT_LON], forecaster.resolution)
    return _answer_pairs(forecaster, cells, utc_hour_ns(queries[EVENT_TIME]), queries.index)


def predict_cell_hours(model: Any, cells: np.ndarray, hours: Any) -> pd.DataFrame:
    """Predicted busyness of H3 cells in UTC hours, pair by pair (``cells[i]`` in ``hours[i]``).

    ``cells`` are uint64 H3 cells at the model's resolution; ``hours`` UTC hour starts (any
    datetime array-like; naive = UTC). The same numbers as ``predict_busyness`` for queries at
    the cells' centres, without the round trip. Returns ``h3_cell``, ``hour`` and
    ``predicted_busyness`` with a fresh 0-based index.
    """
    cells = np.asarray(cells, dtype=np.uint64)
    hours_ns = utc_hour_ns(pd.Series(hours))
    if len(cells) != len(hours_ns):
        raise ValueError(f"Got {len(cells)} cells for {len(hours_ns)} hours: pass them in pairs.")
    return _answer_pairs(as_forecaster(model), cells, hours_ns, pd.RangeIndex(len(cells)))


def cell_hour_grid(cells: np.ndarray, hours: pd.DatetimeIndex) -> tuple[np.ndarray, pd.Series]:
    """Every cell in every hour, hour by hour: the (cells, hours) pairs of the grid."""
    cells = np.asarray(cells, dtype=np.uint64)
    return np.tile(cells, len(hours)), pd.Series(hours.repeat(len(cells)))


def _answer_pairs(
    forecaster: BusynessForecaster, cells: np.ndarray, hours: np.ndarray, index: pd.Index
) -> pd.DataFrame:
    """The answer table for (uint64 cell, int64 ns UTC hour) pairs: each distinct pair once."""
    distinct, inverse = distinct_pairs(cells, hours)
    answer = forecaster.predict_pairs(cells[distinct], hours[distinct])
    unique_cells, cell_index = np.unique(cells, return_inverse=True)
    table = {
        H3_CELL: cell_names(unique_cells)[cell_index],
        HOUR: hours_array(hours),
        PREDICTION: answer["mean"][inverse].astype(float, copy=False),
    }
    for column in INTERVAL_COLUMNS:
        table[column] = answer[column][inverse].astype(float, copy=False)
    table[HORIZON] = answer[HORIZON][inverse].astype(np.int64, copy=False)
    return pd.DataFrame(table, index=index)
