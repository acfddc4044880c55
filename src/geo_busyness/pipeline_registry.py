"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: Pipelines left out of the default run: they write inputs rather than consume them.
NOT_IN_DEFAULT = ("data_generation",)


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline under ``pipelines/`` by its folder name; the default runs all but data generation."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipe for name, pipe in pipelines.items() if name not in NOT_IN_DEFAULT), Pipeline([])
    )
    return pipelines
