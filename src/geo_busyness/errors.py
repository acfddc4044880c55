"""Mistakes a user can fix, and how the CLI reports them: one line saying what is wrong and,
where useful, one ``Next:`` line saying what to do. No traceback: ``--verbose`` or
``GEO_BUSYNESS_TRACEBACK=1`` shows it.

- ``ExplainedError`` is raised already explained (a parameter, an unknown pipeline, a storage
  fault); it is a ``KedroCliError``, so any ``kedro`` command prints it without a traceback.
- ``USER_ERRORS`` names the errors the pipelines raise with a clear message of their own (the
  table does not fit the column mapping, no registered model, too little history, the gate
  refused a deployment, a parameter value the data refuses, no events...), by class path, so
  that nothing here imports a pipeline. An error with a ``next_step`` of its own says it.
- ``explained_errors`` wraps a CLI command: those errors become an ``ExplainedError``, and
  Kedro's ``--from-nodes`` resume hint is dropped for every ``ExplainedError`` (resuming fixes
  nothing there).
  Every other error keeps its traceback: it is a bug to report, not a mistake to fix.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import click
from kedro.framework.cli.utils import KedroCliError

#: Set to 1 to see the full traceback of every error (as ``--verbose`` does).
TRACEBACK_VARIABLE = "GEO_BUSYNESS_TRACEBACK"

#: The next step of a parameter whose value the data refuses (the parameter check's wording).
PARAMETER_NEXT = "fix it in conf/<env>/parameters_<block>.yml or in --params."

#: "module:Class" of the errors whose message says what is wrong -> the next step (None when
#: the message already says it). A subclass of one of them counts as it.
USER_ERRORS: dict[str, str | None] = {
    "geo_busyness.pipelines.data_processing.nodes:EventMappingError": (
        "map your table's column names in data_processing.column_mapping"
        " (conf/base/parameters_data_processing.yml; docs/new_source.md)."
    ),
    "geo_busyness.pipelines.data_processing.nodes:DataQualityError": (
        "read each row's reason in rejected_events, then fix the source or"
        " data_processing.timestamp_format / source_timezone, or raise"
        " data_processing.max_rejected_fraction."
    ),
    "geo_busyness.errors:ParameterValueError": PARAMETER_NEXT,
    "geo_busyness.model.cell_hours:TimeParameterError": PARAMETER_NEXT,
    "geo_busyness.errors:NoEventsError": (
        "run `kedro run --pipelines data_processing` on a table with events"
        " (docs/new_source.md), or check data_processing.column_mapping and the quarantine."
    ),
    "geo_busyness.errors:InsufficientHistoryError": (
        "give more data, or shorten the windows, e.g. --params"
        " feature_engineering.validation_days=3,feature_engineering.test_days=3."
    ),
    "geo_busyness.registry:ModelNotFound": (
        "`kedro run` trains a model and registers it if it passes the quality gate; or set"
        " model_version to a registered version."
    ),
    "geo_busyness.pipelines.deployment.nodes:DeploymentRefused": (
        "deploy a version that passed the gate: `kedro run` registers one as the challenger"
        " when it passes, or set deployment.model_version."
    ),
    "geo_busyness.pipelines.deployment.nodes:DeploymentRolledBack": None,
    "geo_busyness.pipelines.deployment.rollout:DeploymentError": None,
    "geo_busyness.pipelines.inference.nodes:QueryRejectionError": None,
    "geo_busyness.hooks.memory_budget:MemoryBudgetError": None,
    "geo_busyness.datasets:GeneratedFileError": None,
    "geo_busyness.model.loading:ArtifactIntegrityError": None,
}

#: The loggers of Kedro's runners (``AbstractRunner._logger`` is the runner's own module's).
RUNNER_LOGGERS = (
    "kedro.runner.sequential_runner",
    "kedro.runner.thread_runner",
    "kedro.runner.parallel_runner",
)


class ExplainedError(KedroCliError):
    """An error whose message says it all: printed alone (one line, and one ``Next:`` line
    when there is a next step), with the traceback only when asked for."""

    def __init__(self, message: str, next_step: str | None = None) -> None:
        super().__init__(one_line(message))
        self.next_step = next_step

    @property
    def lines(self) -> list[str]:
        """What is wrong, one line each (one, unless a subclass lists several)."""
        return [self.message]

    def show(self, file: IO | None = None) -> None:
        """``Error: ...`` and ``Next: ...`` on stderr; the traceback first when verbose."""
        stream = file or sys.stderr
        if KedroCliError.VERBOSE_ERROR or traceback_requested():
            # From the error itself: click shows it after leaving its `except` block.
            click.echo("".join(traceback.format_exception(self)), file=stream, nl=False)
        for line in self.lines:
            click.secho(f"Error: {line}", fg="red", file=stream)
        if self.next_step:
            click.echo(f"Next: {self.next_step}", file=stream)


class InsufficientHistoryError(ValueError):
    """The data is too short for the train, validation and test windows the parameters ask."""


class ParameterValueError(ValueError):
    """A parameter of the right type that the data refuses (an hour outside the test window, a
    local time that a DST change makes ambiguous); the message names the key and what fits.
    ``next_step`` replaces ``PARAMETER_NEXT`` where a better one is known."""

    def __init__(self, message: str, next_step: str | None = None) -> None:
        super().__init__(message)
        self.next_step = next_step


class NoEventsError(ValueError):
    """A step that needs events found none (e.g. ``clean_events`` has no rows)."""


def one_line(message: str) -> str:
    """``message`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(message).split())


def traceback_requested() -> bool:
    """True when ``GEO_BUSYNESS_TRACEBACK`` asks for full tracebacks (anything but 0/false/no)."""
    value = os.environ.get(TRACEBACK_VARIABLE, "").strip().lower()
    return value not in ("", "0", "false", "no")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it was raised from (``raise ... from``), outermost first.

    Only explicit causes: an error raised while handling another is not explained by it."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__


def _user_error(error: BaseException) -> str | None:
    """The ``USER_ERRORS`` key of ``error``'s class or of one of its bases, if any."""
    for kind in type(error).__mro__:
        key = f"{kind.__module__}:{kind.__qualname__}"
        if key in USER_ERRORS:
            return key
    return None


def explain(error: BaseException) -> ExplainedError | None:
    """The one-line form of ``error`` (or of what it was raised from); None for any other
    error, which keeps its traceback."""
    for link in _causes(error):
        if isinstance(link, ExplainedError):
            return link if link is error else ExplainedError(link.message, link.next_step)
        key = _user_error(link)
        if key is not None:
            return ExplainedError(str(link), getattr(link, "next_step", None) or USER_ERRORS[key])
    return None


class _HeldResumeHints(logging.Filter):
    """Holds back Kedro's "resume with --from-nodes" hint until the command's error is known:
    the runner logs it before hooks turn a storage fault into a ``StorageError``."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.funcName != "_suggest_resume_scenario":
            return True
        self.held.append(record)
        return False

    def release(self) -> None:
        """Log the held hints after all (the error was not the user's to fix)."""
        for record in self.held:
            logging.getLogger(record.name).handle(record)


@contextmanager
def explained_errors(verbose: bool = False) -> Iterator[None]:
    """Run a CLI command's body: a user error leaves as an ``ExplainedError`` (no traceback,
    no resume hint); with ``verbose`` (or ``GEO_BUSYNESS_TRACEBACK=1``) nothing changes."""
    if verbose or traceback_requested():
        yield
        return
    hints = _HeldResumeHints()
    loggers = [logging.getLogger(name) for name in RUNNER_LOGGERS]
    for logger in loggers:
        logger.addFilter(hints)
    explained: BaseException | None = None
    try:
        yield
    except click.ClickException as error:
        explained = error if isinstance(error, ExplainedError) else None
        raise
    except Exception as error:
        explained = explain(error)
        if explained is None:
            raise
        raise explained from error
    finally:
        for logger in loggers:
            logger.removeFilter(hints)
        if explained is None:
            hints.release()
