"""Shared fixtures: a throw-away copy of the project, and real Kedro runs inside it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from geo_busyness.scratch import make_project_copy

__all__ = ["make_project_copy"]  # re-exported for tests

#: A small city sample that still has weeks enough for train, validation and test windows.
SMALL_GENERATION = {
    "n_events": 30_000,
    "weeks": 4,
    "n_restaurants": 60,
    "n_couriers": 80,
    "dirty_fraction": 0.02,
}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")


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
