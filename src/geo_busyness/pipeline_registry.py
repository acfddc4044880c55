"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: Pipelines left out of the default run (the training job): data generation writes the inputs,
#: deployment pushes a model somewhere, which a plain `kedro run` should never do; inference,
#: monitoring and shadow (scoring the server's shadow log) are scheduled jobs that read the
#: registry or the server's log, not this run's outputs; retraining is the training job again on
#: the history plus the recent batch (`kedro retrain`).
NOT_IN_DEFAULT = (
    "data_generation",
    "deployment",
    "inference",
    "monitoring",
    "retraining",
    "shadow",
)


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline under ``pipelines/`` by its folder name; the default is the training job."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipe for name, pipe in pipelines.items() if name not in NOT_IN_DEFAULT), Pipeline([])
    )
    return pipelines
