"""Pipelines run in memory, as in Kedro's starter tests: SequentialRunner over MemoryDatasets.

No KedroSession, no files, no MLflow: a few seconds on a tiny generated city.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from geo_busyness.testing import PROJECT_ROOT

#: A tiny city with weeks enough for train (18 days: two weeks of history behind the first
#: training origin, and a few days of origins), validation (5) and test (5) windows.
TINY_GENERATION = {
    "n_events": 10_000,
    "weeks": 4,
    "n_restaurants": 30,
    "n_couriers": 40,
    "dirty_fraction": 0.02,
}
#: Windows and models small enough for a few seconds on two cores.
TINY_TRAINING = {
    "feature_engineering": {"validation_days": 5, "test_days": 5},
    "modeling": {
        "n_jobs": 1,
        "learned_min_train_days": 3,  # the tiny city's 18 train days: 2 weeks + 4 days of origins
        "random_forest": {
            "max_train_rows": 5_000,
            "cv_splits": 2,
            "params": {"n_estimators": 10, "n_jobs": 1},
            "grid": {"max_depth": [6], "min_samples_leaf": [20]},
        },
        "gradient_boosting": {"params": {"max_iter": 30, "learning_rate": 0.1}},
        "forecaster": {"max_train_rows": 20_000},
        "permutation_repeats": 1,
        "leaky_reference_protocol": {"max_rows": 2_000},
    },
}


class KeptMemoryDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so every intermediate output can be read."""

    def _release(self) -> None:
        """Keep the data (the runner releases intermediate datasets once they are used)."""


def project_parameters(overrides: dict[str, Any], conf: Path = PROJECT_ROOT / "conf") -> dict:
    """The project's base parameters with ``overrides`` merged key by key (like ``--params``)."""
    loader = OmegaConfigLoader(
        conf_source=str(conf),
        base_env="base",
        default_run_env="base",
        runtime_params=overrides,
    )
    return loader["parameters"]


def _param(parameters: dict[str, Any], dotted: str) -> Any:
    return reduce(lambda value, key: value[key], dotted.split("."), parameters)


def run_in_memory(
    pipeline: Pipeline, data: dict[str, Any], parameters: dict[str, Any]
) -> dict[str, Any]:
    """Run ``pipeline`` on in-memory ``data`` and the ``params:`` inputs it names.

    Returns every dataset the pipeline wrote, intermediate ones included.
    """
    inputs = {name: data[name] for name in pipeline.inputs() if not name.startswith("params:")}
    params = {
        name: _param(parameters, name.removeprefix("params:"))
        for name in pipeline.inputs()
        if name.startswith("params:")
    }
    written = pipeline.all_outputs()
    catalog = DataCatalog(
        {name: MemoryDataset(value) for name, value in {**inputs, **params}.items()}
        | {name: KeptMemoryDataset() for name in written}
    )
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in written}
