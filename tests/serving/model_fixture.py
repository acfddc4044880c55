"""A small real busyness model for serving tests: the project's BusynessFeatures + a regressor.

Built from synthetic events in a second or two and saved the way the modeling pipeline logs
it (``mlflow.sklearn``, the ``geo_busyness`` modules bundled as ``code_paths``).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from geo_busyness.model.bundle import bundle_code, model_requirements
from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.features import BusynessFeatures
from geo_busyness.model.geo import venue_id
from geo_busyness.model.predict import cell_hour_queries

START = pd.Timestamp("2026-01-05T00:00:00Z")
WEEKS = 3
CENTRE = (50.45, -104.6)


def synthetic_events(n_events: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Courier pings around a few restaurants with lunch and dinner peaks (clean schema)."""
    rng = np.random.default_rng(seed)
    venues = np.column_stack(
        [CENTRE[0] + rng.normal(0, 0.03, 15), CENTRE[1] + rng.normal(0, 0.05, 15)]
    )
    popularity = rng.dirichlet(np.ones(len(venues)))
    hour_weight = 0.2 + np.exp(-0.5 * ((np.arange(24) - 18) / 1.5) ** 2)
    hour_weight += np.exp(-0.5 * ((np.arange(24) - 12) / 1.5) ** 2)
    day = rng.integers(0, WEEKS * 7, n_events)
    hour = rng.choice(24, n_events, p=hour_weight / hour_weight.sum())
    minute = rng.uniform(0, 60, n_events)
    times = START + pd.to_timedelta(day * 24 + hour, unit="h") + pd.to_timedelta(minute, unit="m")
    which = rng.choice(len(venues), n_events, p=popularity)
    lat, lon = venues[which, 0], venues[which, 1]
    frame = pd.DataFrame(
        {
            "courier_location_timestamp": times,
            "courier_lat": lat + rng.normal(0, 0.0004, n_events),
            "courier_lon": lon + rng.normal(0, 0.0006, n_events),
            "restaurant_lat": lat,
            "restaurant_lon": lon,
        }
    )
    frame["restaurant_id"] = venue_id(frame["restaurant_lat"], frame["restaurant_lon"])
    return frame.sort_values("courier_location_timestamp", ignore_index=True)


@functools.cache
def fit_model() -> Pipeline:
    """The default small model, fitted once per test process (read-only for tests)."""
    return fit_model_on(synthetic_events())


def fit_model_on(events: pd.DataFrame) -> Pipeline:
    """Features fitted on the events, a regressor on their dense cell x hour panel."""
    end = START + pd.Timedelta(weeks=WEEKS)
    features = BusynessFeatures(resolution=7, horizon_hours=24, lags_hours=(24, 168))
    features.fit(events, window_start=START, window_end=end)
    hours = pd.Series(pd.date_range(START, end, freq="h", inclusive="left"))
    cells = np.repeat(features.cells_, len(hours))
    panel_hours = pd.Series(np.tile(hours.to_numpy(), len(features.cells_)))
    queries = cell_hour_queries(cells, panel_hours)
    counts = count_cell_hours(events, features.resolution).set_index(["cell", "hour"])["busyness"]
    keys = pd.MultiIndex.from_arrays([cells, queries["courier_location_timestamp"]])
    target = counts.reindex(keys, fill_value=0).to_numpy(dtype=float)
    regressor = HistGradientBoostingRegressor(max_iter=40, loss="poisson", random_state=0)
    regressor.fit(features.transform(queries), target)
    return Pipeline([("features", features), ("regressor", regressor)])


def save_model(model: Pipeline, path: Path) -> Path:
    """Save as an MLflow sklearn model with the project modules bundled, like the registry's."""
    import mlflow.sklearn  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as code_dir:
        package = bundle_code(Path(code_dir))
        mlflow.sklearn.save_model(
            model,
            str(path),
            serialization_format="cloudpickle",
            pip_requirements=model_requirements(),
            code_paths=[str(package)],
        )
    return path
