"""Shared fixtures: a throw-away copy of the project, and real Kedro runs inside it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from geo_busyness.testing import (
    CANDIDATES_WITHOUT_FOREST,
    make_project_copy,
    run_report,
    tracking_uri,
    use_own_mlflow_store,
)

__all__ = ["make_project_copy", "run_report"]  # re-exported for tests
#: The small packaged model (tests/serving, tests/pipelines/deployment).
pytest_plugins = ("tests.packaged_model", "tests.alerting")

#: A small city sample that still has weeks enough for train, validation and test windows.
SMALL_GENERATION = {
    "n_events": 30_000,
    "weeks": 4,
    "n_restaurants": 60,
    "n_couriers": 80,
    "dirty_fraction": 0.02,
}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

# pytest-xdist workers run under execnet, whose ``__main__`` has neither ``__spec__`` nor
# ``__file__``: pyspark.sql.connect then believes it runs doctests and calls sys.exit(0) when
# pandera imports it (every Kedro session's validator set-up). A file name tells it otherwise.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

#: Fixtures that make a test slow, by what they start: real KedroSession runs
#: (processed_project, trained_project), the moto S3 server (s3_endpoint, cloud_env), the
#: kedro-viz site in a browser (viz_site) and a serving subprocess (server). A test needing
#: one, directly or through another fixture, is marked ``slow``; `make test-fast` leaves those
#: out. Tests that start such things themselves carry ``@pytest.mark.slow`` instead.
SLOW_FIXTURES = frozenset(
    {
        "processed_project",
        "trained_project",
        "s3_endpoint",
        "cloud_env",
        "viz_site",
        "server",
        "moto_endpoint",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that uses one of ``SLOW_FIXTURES`` (transitively)."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@contextmanager
def inside(path: Path) -> Iterator[Path]:
    """Work from ``path`` (MLflow's SQLite URI is relative to the working directory)."""
    with contextlib.chdir(path):
        yield path


def run_kedro(
    project: Path,
    pipelines: list[str],
    params: dict[str, Any] | None = None,
    env: str | None = None,
) -> dict[str, Any]:
    """Run named pipelines through a real KedroSession in ``project``; ``params`` as ``--params``."""
    with inside(project):
        bootstrap_project(project)
        with KedroSession.create(
            project_path=project, runtime_params=params or {}, env=env
        ) as session:
            return session.run(pipeline_names=pipelines)


def generation_params(**overrides: Any) -> dict[str, Any]:
    """Runtime parameters for a small generated sample."""
    return {"data_generation": {**SMALL_GENERATION, **overrides}}


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """``build(path)`` once per test session, shared by every pytest-xdist worker.

    The first worker to ask builds under a lock in the session's shared temporary folder; the
    others wait and use the same folder (tests only read it: they copy what they change). A
    build that failed is started again by the next worker to ask, so its error shows there too.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder; each worker has its own below it
    path, done = root / name, root / f"{name}.built"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            build(path)
            done.touch()
    return path


def _processed(project: Path) -> None:
    make_project_copy(project)
    run_kedro(project, ["data_generation", "data_processing"], generation_params())


@pytest.fixture(scope="session")
def processed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with a small generated sample already through data_processing (built
    once per session for all workers; read-only)."""
    return built_once(tmp_path_factory, "processed-project", _processed)


#: Windows and a tiny grid that fit the 4-week sample and keep the run short.
SMALL_TRAINING = {
    "feature_engineering": {"validation_days": 5, "test_days": 5},
    "modeling": {
        # The small city's 18 train days: its features' two weeks and 4 days of origins
        # (the shipped minimum of 7 would leave the baselines alone).
        "learned_min_train_days": 3,
        "random_forest": {
            "max_train_rows": 20_000,
            "cv_splits": 2,
            "params": {"n_estimators": 20},
            "grid": {"max_depth": [8], "min_samples_leaf": [20, 100]},
        },
        "forecaster": {"max_train_rows": 100_000},
        "permutation_repeats": 1,
        "leaky_reference_protocol": {"max_rows": 10_000},
    },
}


#: SMALL_TRAINING without the random forest's grid search (the slowest fit by far), for tests
#: that compare or drive runs rather than judge the model chosen.
QUICK_TRAINING = {
    **SMALL_TRAINING,
    "modeling": {
        **SMALL_TRAINING["modeling"],
        "candidates": list(CANDIDATES_WITHOUT_FOREST),
    },
}


@dataclass
class TrainedProject:
    """A project copy after one training run, with what the run wrote."""

    path: Path
    report: dict[str, Any]
    test_predictions: pd.DataFrame
    baseline_test_predictions: pd.DataFrame


def read_outputs(project: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The evaluation report, and the model's and the baseline's test predictions a run saved."""
    data = project / "data"
    report = run_report(project)
    predictions = pd.read_parquet(data / "07_model_output" / "test_predictions.parquet")
    baseline = pd.read_parquet(data / "07_model_output" / "baseline_test_predictions.parquet")
    return report, predictions, baseline


@contextmanager
def project_mlflow(project: Path) -> Iterator[mlflow.MlflowClient]:
    """An MLflow client on the project's SQLite store (from inside the project)."""
    previous = mlflow.get_tracking_uri()
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            yield mlflow.MlflowClient()
        finally:
            mlflow.set_tracking_uri(previous)


def copy_project(source: Path, dest: Path, *, with_mlflow: bool) -> Path:
    """Copy a project with its own MLflow store, named by an absolute URI.

    MLflow caches one store per tracking URI string in the process, so the relative
    ``sqlite:///mlflow.db`` of conf/base would keep pointing at the first project's database.
    """
    ignore = None if with_mlflow else shutil.ignore_patterns("mlflow.db", "mlruns")
    shutil.copytree(source, dest, ignore=ignore)
    use_own_mlflow_store(dest)
    return dest


@pytest.fixture(scope="session")
def trained_project(
    processed_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainedProject:
    """feature_engineering + modeling on a copy of the processed sample (gate expected to pass;
    built once per session for all workers; read-only)."""

    def train(project: Path) -> None:
        copy_project(processed_project, project, with_mlflow=False)
        run_kedro(project, ["feature_engineering", "modeling"], SMALL_TRAINING)

    project = built_once(tmp_path_factory, "trained-project", train)
    return TrainedProject(project, *read_outputs(project))
