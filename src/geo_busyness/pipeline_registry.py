"""Project pipelines."""

from __future__ import annotations

import difflib
import importlib.resources
from collections.abc import Iterable

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from geo_busyness.errors import ExplainedError

#: Pipelines left out of the default run (the training job): data generation writes the inputs,
#: deployment pushes a model somewhere, which a plain `kedro run` should never do; inference,
#: monitoring and shadow (scoring the server's shadow log) are scheduled jobs that read the
#: registry or the server's log, not this run's outputs; retraining is the training job again on
#: the history plus the recent batch (`kedro retrain`).
NOT_IN_DEFAULT = (
    "data_generation",
    "deployment",
    "inference",
    "ingestion",
    "monitoring",
    "retraining",
    "shadow",
)
DEFAULT = "__default__"


class UnknownPipelineError(ExplainedError):
    """A pipeline name that is not registered; the message lists the names."""


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline under ``pipelines/`` by its folder name; the default is the training job."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines[DEFAULT] = sum(
        (pipe for name, pipe in pipelines.items() if name not in NOT_IN_DEFAULT), Pipeline([])
    )
    return pipelines


def pipeline_names() -> list[str]:
    """The names ``register_pipelines`` registers (the folders under ``pipelines/`` as
    ``find_pipelines`` sees them, and ``__default__``), without importing any pipeline."""
    folders = importlib.resources.files(f"{__package__}.pipelines").iterdir()
    found = (f.name for f in folders if f.is_dir() and f.name != "__pycache__")
    return [DEFAULT, *sorted(name for name in found if not name.startswith("."))]


def unknown_pipeline_message(unknown: list[str], known: list[str]) -> str:
    """``Unknown pipeline 'x' (did you mean 'y'?); the pipelines are ...`` in one line."""
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        named.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    noun = "pipeline" if len(unknown) == 1 else "pipelines"
    return f"Unknown {noun} {', '.join(named)}; the pipelines are {', '.join(known)}."


def check_pipeline_names(names: Iterable[str]) -> None:
    """Raise ``UnknownPipelineError`` if any of ``names`` is not a registered pipeline (before
    ``find_pipelines`` turns it into an ImportError deep in a run)."""
    known = pipeline_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownPipelineError(unknown_pipeline_message(unknown, known))
