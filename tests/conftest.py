"""Shared fixtures: a throw-away copy of the project, and real Kedro runs inside it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)

#: A small city sample that still has weeks enough for train, validation and test windows.
SMALL_GENERATION = {
    "n_events": 30_000,
    "weeks": 4,
    "n_restaurants": 60,
    "n_couriers": 80,
    "dirty_fraction": 0.02,
}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")


def make_project_copy(dest: Path) -> Path:
    """Copy the project's configuration into ``dest`` with empty data folders."""
    shutil.copytree(PROJECT_ROOT / "conf" / "base", dest / "conf" / "base")
    (dest / "conf" / "local").mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, dest / name)
    (dest / "src").mkdir()  # bootstrap_project wants a source dir; the package is installed
    for layer in DATA_LAYERS:
        (dest / "data" / layer).mkdir(parents=True)
    return dest


@contextmanager
def inside(path: Path) -> Iterator[Path]:
    """Work from ``path`` (MLflow's SQLite URI is relative to the working directory)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(previous)


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


@pytest.fixture(scope="session")
def processed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with a small generated sample already through data_processing."""
    project = make_project_copy(tmp_path_factory.mktemp("project"))
    run_kedro(project, ["data_generation", "data_processing"], generation_params())
    return project
