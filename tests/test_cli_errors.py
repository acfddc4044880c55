"""Issue #26 item 2: each mistake a user makes, through the real ``kedro`` CLI in a subprocess on
a small project copy, ends in one ``Error:`` line and (where useful) one ``Next:`` line: no
traceback, no Kedro ``--from-nodes`` resume hint. ``--verbose`` or ``GEO_BUSYNESS_TRACEBACK=1``
shows the traceback.

Each run starts a Kedro CLI (~5-10 s); parameter mistakes stop before any node runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from geo_busyness.errors import TRACEBACK_VARIABLE
from tests.conftest import TrainedProject, copy_project
from tests.test_cli import _register_versions

pytestmark = pytest.mark.slow

#: What must never reach a user for these mistakes (Rich draws a traceback in a box).
NOISE = ("Traceback", "╭", "--from-nodes", "No nodes ran")
PARAMETER_NEXT = "fix it in conf/<env>/parameters_<block>.yml or in --params"


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def lines(self) -> list[str]:
        """The ``Error:`` and ``Next:`` lines (stderr; the log goes to stdout)."""
        return [line for line in self.stderr.splitlines() if line.startswith(("Error:", "Next:"))]


def kedro(project: Path, *args: str, traceback: bool = False) -> Outcome:
    """``kedro ARGS`` in ``project``, as a user types it."""
    env = {k: v for k, v in os.environ.items() if k != TRACEBACK_VARIABLE}
    env |= {"KEDRO_DISABLE_TELEMETRY": "1", **({TRACEBACK_VARIABLE: "1"} if traceback else {})}
    done = subprocess.run(  # noqa: S603 - this interpreter's kedro
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_explained(outcome: Outcome, error: str, next_step: str | None) -> None:
    """Exit 1, exactly one ``Error:`` line starting with ``error``, the ``Next:`` line, no noise."""
    assert outcome.returncode == 1, outcome.output[-3000:]
    assert [word for word in NOISE if word in outcome.output] == [], outcome.output[-3000:]
    expected = 2 if next_step else 1
    assert len(outcome.lines) == expected, outcome.stderr
    assert outcome.lines[0].startswith(f"Error: {error}"), outcome.lines
    if next_step:
        assert outcome.lines[1].startswith(f"Next: {next_step}"), outcome.lines


@pytest.fixture(scope="module")
def project(processed_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the small processed sample (clean events, no registered model)."""
    return copy_project(
        processed_project, tmp_path_factory.mktemp("cli_errors") / "project", with_mlflow=False
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--params", "feature_engineering.h3_resolution=abc"],
            "Parameter feature_engineering.h3_resolution='abc' should be a valid integer.",
        ),
        (
            [
                "--pipelines",
                "data_processing",
                "--params",
                "data_processing.max_rejected_fraction=high",
            ],
            "Parameter data_processing.max_rejected_fraction='high' should be a valid number.",
        ),
        (
            ["--pipelines", "inference", "--params", "inference.horizon_hour=48"],
            "Unknown parameter inference.horizon_hour (did you mean inference.horizon_hours?).",
        ),
    ],
    ids=["type", "type-after-a-node-today", "typo-of-a-key"],
)
def test_a_parameter_mistake(project, args, error):
    outcome = kedro(project, "run", *args)
    assert_explained(outcome, error, PARAMETER_NEXT)
    assert outcome.lines[0] == f"Error: {error}"
    assert "Running node" not in outcome.stdout  # refused before anything ran


def test_an_unknown_pipeline(project):
    outcome = kedro(project, "run", "--pipelines", "modelling")
    assert_explained(outcome, "Unknown pipeline 'modelling' (did you mean 'modeling'?); ", None)
    assert "the pipelines are __default__, data_generation" in outcome.lines[0]


def test_a_mapping_that_does_not_fit_the_table(project):
    outcome = kedro(
        project,
        "run",
        "--pipelines",
        "data_processing",
        "--params",
        "data_processing.column_mapping.courier_lat=lat",
    )
    assert_explained(
        outcome,
        "The raw table lacks mapped column(s) 'lat' (for courier_lat); its columns are",
        "map your table's column names in data_processing.column_mapping",
    )


def test_no_registered_model(project):
    outcome = kedro(project, "run", "--pipelines", "inference")
    assert_explained(
        outcome,
        "No version of registered model 'geo-busyness' has any of the aliases",
        "`kedro run` trains a model",
    )


def test_too_little_history_for_the_windows(project):
    outcome = kedro(
        project,
        "run",
        "--pipelines",
        "feature_engineering",
        "--params",
        "feature_engineering.validation_days=20,feature_engineering.test_days=14",
    )
    assert_explained(outcome, "The events (", "give more data, or shorten the windows")
    assert "leave no train window" in outcome.lines[0]


def test_too_little_history_to_choose_a_forecaster_after_nodes_ran(project):
    """Nodes completed before the failure: this is where Kedro printed its resume hint."""
    outcome = kedro(
        project,
        "run",
        "--pipelines",
        "feature_engineering,modeling",
        "--params",
        "feature_engineering.validation_days=10,feature_engineering.test_days=14",
    )
    assert "Completed node" in outcome.stdout
    assert_explained(
        outcome,
        "Too little history to choose a forecaster: the train window has",
        "give more data, or shorten the windows",
    )


def test_the_gate_refuses_a_deployment(project):
    _register_versions(project, {})  # registered without the gate's tag
    outcome = kedro(
        project, "run", "--pipelines", "deployment", "--params", "deployment.model_version=1"
    )
    assert_explained(
        outcome,
        "Refusing to deploy geo-busyness version 1 (version 1): it did not pass the quality gate",
        "deploy a version that passed the gate",
    )


# ---------------------------------------------------------------- values the data refuses


@pytest.fixture(scope="module")
def trained(trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the small trained project (test predictions, a registered model)."""
    return copy_project(
        trained_project.path, tmp_path_factory.mktemp("cli_errors") / "trained", with_mlflow=True
    )


def test_a_map_hour_outside_the_test_window(trained):
    outcome = kedro(
        trained, "run", "--pipelines", "reporting", "--params", "reporting.map_hour=2001-01-01"
    )
    assert_explained(
        outcome,
        "reporting.map_hour='2001-01-01' is not an hour of the test window: expected a"
        " whole UTC hour from ",
        "set reporting.map_hour to one of those hours, or to null for the busiest test hour",
    )


def test_a_start_that_a_dst_change_makes_ambiguous(trained):
    """01:30 happens twice in Winnipeg on 2026-11-01 (clocks go back at 02:00)."""
    outcome = kedro(
        trained,
        "run",
        "--pipelines",
        "inference",
        "--params",
        "inference.start=2026-11-01T01:30:00,data_processing.source_timezone=America/Winnipeg",
    )
    assert_explained(
        outcome,
        "inference.start='2026-11-01T01:30:00' is ambiguous or does not exist in the source"
        " timezone America/Winnipeg",
        PARAMETER_NEXT,
    )
    assert "give it with a UTC offset" in outcome.lines[0]


def test_no_clean_events_to_forecast_from(trained, tmp_path):
    """A clean table with its columns and no rows (every row of a source quarantined, say)."""
    empty = copy_project(trained, tmp_path / "empty", with_mlflow=True)
    clean = empty / "data" / "03_primary" / "clean_events.parquet"
    pd.read_parquet(clean).iloc[:0].to_parquet(clean)
    outcome = kedro(empty, "run", "--pipelines", "inference")
    assert_explained(
        outcome,
        "clean_events has no rows: set inference.start to forecast from a time.",
        "run `kedro run --pipelines data_processing` on a table with events",
    )


def test_verbose_shows_the_traceback(project):
    outcome = kedro(
        project,
        "run",
        "--pipelines",
        "data_processing",
        "--params",
        "data_processing.column_mapping.courier_lat=lat",
        "--verbose",
    )
    assert outcome.returncode == 1
    assert "Traceback" in outcome.output or "╭" in outcome.output
    assert "EventMappingError" in outcome.output


def test_the_environment_variable_shows_the_traceback(project):
    outcome = kedro(
        project,
        "run",
        "--pipelines",
        "inference",
        "--params",
        "inference.horizon_hour=48",
        traceback=True,
    )
    assert outcome.returncode == 1
    assert "Traceback (most recent call last)" in outcome.stderr
    assert outcome.lines[0].startswith("Error: Unknown parameter inference.horizon_hour")
