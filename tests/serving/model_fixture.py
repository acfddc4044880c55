"""A small real busyness model for serving tests: a fitted ``BusynessForecaster``.

Built from synthetic events in a few seconds the way the modeling pipeline builds it (counts ->
``CountHistory``, per-cell ``BusynessFeatures`` fitted on the events, a Poisson gradient
boosting forecaster fitted on the history) and saved the way the registry logs it
(``mlflow.sklearn``, the ``geo_busyness`` modules bundled as ``code_paths``).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from geo_busyness.model.bundle import bundle_code, model_requirements
from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.features import BusynessFeatures, cell_feature_params
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.geo import venue_id
from geo_busyness.model.history import history_from_counts

START = pd.Timestamp("2026-01-05T00:00:00Z")  # a Monday
#: Weeks of history: a learned row needs two weeks before its origin (``MIN_ORIGIN``), so
#: four weeks leave two weeks of training origins.
WEEKS = 4
#: The model's origin: the hour after its history (served forecasts start here).
END = START + pd.Timedelta(weeks=WEEKS)
CENTRE = (50.45, -104.6)
TIMEZONE = "America/Regina"
RESOLUTION = 7
FEATURE_PARAMS = {"h3_resolution": RESOLUTION, "n_clusters": 3, "random_state": 0}


def synthetic_events(n_events: int = 8000, seed: int = 0, weeks: int = WEEKS) -> pd.DataFrame:
    """Courier pings around a few restaurants with lunch and dinner peaks (clean schema)."""
    rng = np.random.default_rng(seed)
    venues = np.column_stack(
        [CENTRE[0] + rng.normal(0, 0.03, 15), CENTRE[1] + rng.normal(0, 0.05, 15)]
    )
    popularity = rng.dirichlet(np.ones(len(venues)))
    hour_weight = 0.2 + np.exp(-0.5 * ((np.arange(24) - 18) / 1.5) ** 2)
    hour_weight += np.exp(-0.5 * ((np.arange(24) - 12) / 1.5) ** 2)
    day = rng.integers(0, weeks * 7, n_events)
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
def fit_model() -> BusynessForecaster:
    """The default small model, fitted once per test process (read-only for tests)."""
    return fit_model_on(synthetic_events())


def fit_model_on(
    events: pd.DataFrame, start: pd.Timestamp = START, end: pd.Timestamp = END
) -> BusynessForecaster:
    """Per-cell statistics fitted on the events, a gradient boosting forecaster on their
    count history [start, end), with a negative-binomial dispersion for its intervals."""
    features = BusynessFeatures(
        **cell_feature_params({**FEATURE_PARAMS, "validation_days": 7, "test_days": 7})
    ).fit(events, window_start=start, window_end=end)
    counts = count_cell_hours(events, RESOLUTION)
    history = history_from_counts(counts, features.cells_, start, end, TIMEZONE)
    model = BusynessForecaster(
        method="gradient_boosting",
        max_train_rows=20_000,
        regressor_params={"max_iter": 30, "max_depth": 3, "min_samples_leaf": 50},
        random_state=0,
    ).fit(history, features)
    model.size_ = 2.0  # as if calibrated on a validation window: P10 < P90 around the mean
    return model


def save_model(model: BusynessForecaster, path: Path) -> Path:
    """Save as an MLflow model directory in the safe format with the project modules bundled,
    like the registry's (``registry.save_model``)."""
    from geo_busyness.registry import save_model as save_registry_model  # noqa: PLC0415 - MLflow

    with tempfile.TemporaryDirectory() as code_dir:
        package = bundle_code(Path(code_dir))
        save_registry_model(
            model, path, code_paths=[str(package)], pip_requirements=model_requirements()
        )
    return path
