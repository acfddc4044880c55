"""errors.py: a user's mistake becomes one ``Error:`` line and one ``Next:`` line, without a
traceback or Kedro's ``--from-nodes`` resume hint; anything else keeps its traceback."""

from __future__ import annotations

import importlib
import logging

import click
import pytest
from kedro.framework.cli.utils import KedroCliError
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from geo_busyness.errors import (
    TRACEBACK_VARIABLE,
    USER_ERRORS,
    ExplainedError,
    InsufficientHistoryError,
    explain,
    explained_errors,
)
from geo_busyness.pipelines.data_processing.nodes import EventMappingError
from geo_busyness.pipelines.deployment.nodes import DeploymentRefused
from geo_busyness.registry import ModelNotFound


def _class(key: str) -> type:
    module, name = key.split(":")
    return getattr(importlib.import_module(module), name)


def test_every_listed_error_class_exists():
    """The registry names classes by path (nothing imported up front): a rename must fail here."""
    for key in USER_ERRORS:
        assert issubclass(_class(key), Exception), key


@pytest.mark.parametrize(
    ("error", "next_words"),
    [
        (EventMappingError("The raw table lacks mapped column(s) 'lat'"), "column_mapping"),
        (ModelNotFound("No version of registered model 'geo-busyness'"), "kedro run"),
        (InsufficientHistoryError("Too little history to choose a forecaster"), "validation_days"),
        (DeploymentRefused("Refusing to deploy geo-busyness version 1"), "passed the gate"),
    ],
)
def test_a_user_error_is_explained_with_its_next_step(error, next_words):
    explained = explain(error)
    assert explained.message == str(error)
    assert next_words in explained.next_step


def test_the_explanation_is_one_line():
    explained = explain(EventMappingError("lacks 'lat'\n  its columns are\n ['a', 'b']"))
    assert explained.message == "lacks 'lat' its columns are ['a', 'b']"


def test_an_error_raised_from_a_user_error_is_explained_by_it():
    try:
        try:
            raise ModelNotFound("no champion")
        except ModelNotFound as cause:
            raise DatasetError("Failed while loading data from dataset") from cause
    except DatasetError as error:
        assert explain(error).message == "no champion"


def test_an_error_raised_while_handling_one_is_not_explained_by_it():
    """A bug in an ``except`` block is a bug: its traceback must stay."""
    try:
        try:
            raise ModelNotFound("no champion")
        except ModelNotFound:
            raise RuntimeError("a bug")  # noqa: B904 - the implicit context is the point
    except RuntimeError as error:
        assert explain(error) is None


def test_other_errors_keep_their_traceback():
    assert explain(ValueError("invalid literal for int() with base 10: 'abc'")) is None
    with pytest.raises(ValueError, match="invalid literal"), explained_errors():
        raise ValueError("invalid literal for int()")


def test_explained_errors_raise_the_one_line_form():
    with pytest.raises(ExplainedError) as raised, explained_errors():
        raise EventMappingError("lacks 'lat'")
    assert isinstance(raised.value, click.ClickException)
    assert isinstance(raised.value.__cause__, EventMappingError)


@pytest.mark.parametrize("asked", ["verbose", "environment"])
def test_verbose_or_the_environment_variable_leave_the_error_as_it_is(asked, monkeypatch):
    if asked == "environment":
        monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    with pytest.raises(EventMappingError), explained_errors(verbose=asked == "verbose"):
        raise EventMappingError("lacks 'lat'")


def test_show_prints_two_lines_and_no_traceback(capsys, monkeypatch):
    monkeypatch.setattr(KedroCliError, "VERBOSE_ERROR", False)
    monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    ExplainedError("Unknown parameter inference.horizon_hour", "fix it").show()
    err = capsys.readouterr().err
    assert err.splitlines() == ["Error: Unknown parameter inference.horizon_hour", "Next: fix it"]


def test_show_prints_the_traceback_first_when_verbose(capsys, monkeypatch):
    monkeypatch.setattr(KedroCliError, "VERBOSE_ERROR", True)
    try:
        raise ExplainedError("no champion") from ModelNotFound("no champion")
    except ExplainedError as error:
        error.show()
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ModelNotFound: no champion" in err  # the cause too
    assert err.rstrip().endswith("Error: no champion")


# ---------------------------------------------------------------- Kedro's resume hint


def _fail(kind: type[Exception]):
    def failing(_value: int) -> int:
        raise kind("the data does not fit")

    return failing


def _run_failing_pipeline(kind: type[Exception]) -> None:
    """A real SequentialRunner: one node completes, the next raises ``kind``."""
    pipeline = Pipeline(
        [
            node(lambda: 1, None, "one", name="first"),
            node(_fail(kind), "one", "two", name="second"),
        ]
    )
    catalog = DataCatalog({"one": MemoryDataset(), "two": MemoryDataset()})
    SequentialRunner().run(pipeline, catalog)


def _resume_hints(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "--from-nodes" in r.getMessage()]


def test_kedro_suggests_resuming_after_a_node_failed(caplog):
    """The hint the next test removes is really there without ``explained_errors``."""
    caplog.set_level(logging.WARNING)
    with pytest.raises(EventMappingError):
        _run_failing_pipeline(EventMappingError)
    assert _resume_hints(caplog)


def test_no_resume_hint_for_a_user_error(caplog):
    caplog.set_level(logging.WARNING)
    with pytest.raises(ExplainedError), explained_errors():
        _run_failing_pipeline(EventMappingError)
    assert _resume_hints(caplog) == []


def test_the_resume_hint_stays_for_a_bug(caplog):
    caplog.set_level(logging.WARNING)
    with pytest.raises(RuntimeError), explained_errors():
        _run_failing_pipeline(RuntimeError)
    assert _resume_hints(caplog)


def test_the_hint_filter_is_removed_after_the_command(caplog):
    caplog.set_level(logging.WARNING)
    with pytest.raises(ExplainedError), explained_errors():
        _run_failing_pipeline(EventMappingError)
    with pytest.raises(EventMappingError):
        _run_failing_pipeline(EventMappingError)
    assert _resume_hints(caplog)


def test_no_resume_hint_when_the_error_is_explained_later(caplog):
    """A storage fault leaves the runner as a DatasetError; StorageErrorHook explains it after
    the runner logged its hint: the hint is held until the command's error is known."""
    caplog.set_level(logging.WARNING)
    with pytest.raises(ExplainedError), explained_errors():
        try:
            _run_failing_pipeline(FileNotFoundError)
        except FileNotFoundError as error:  # as on_pipeline_error's StorageError does
            raise ExplainedError("Could not load dataset 'one'") from error
    assert _resume_hints(caplog) == []


def test_an_ambiguous_time_parameter_is_explained_naming_the_key():
    """A naive start that a DST change repeats (any time parameter: feature_engineering.start,
    inference.start) stops in one line with the parameter's next step, not a traceback."""
    from geo_busyness.model.cell_hours import parse_time_parameter  # noqa: PLC0415

    with pytest.raises(ValueError) as caught:
        parse_time_parameter("2026-11-01T01:30:00", "America/Winnipeg", "feature_engineering.start")
    explained = explain(caught.value)
    assert explained is not None
    assert "feature_engineering.start='2026-11-01T01:30:00' is ambiguous" in explained.message
    assert explained.next_step == USER_ERRORS["geo_busyness.errors:ParameterValueError"]
