"""`kedro retrain` as a job over a trained small project: failures keep the champion and name
their step, a rerun resumes a failed deployment, and a held lock stops a second job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo_busyness.operations.job import (
    RetrainingFailed,
    RetrainingJob,
    RetrainingLocked,
    _merge,
    retraining_lock,
)
from geo_busyness.parameter_check import ParameterError
from tests.conftest import SMALL_TRAINING, copy_project, inside, project_mlflow, run_kedro
from tests.pipelines.monitoring.test_pipeline import write_recent_window

pytestmark = pytest.mark.slow
RECORDS = Path("data") / "08_reporting" / "retraining" / "retraining_record.json"
#: Retrains without the forest's grid search (the slowest candidate), to keep the tests short.
RETRAIN = SMALL_TRAINING | {
    "modeling": {
        **SMALL_TRAINING["modeling"],
        "candidates": ["seasonal_naive", "level_adjusted", "gradient_boosting"],
    }
}
#: Evening demand doubled: monitoring recommends retraining, the retrained model passes the
#: baseline gate (on an unshifted week of the small city it misses day-ahead 4-24 h by ~4%).
EVENING_SHIFT = {"evening_demand_factor": 2.0}


@pytest.fixture
def served(trained_project, tmp_path) -> Path:
    """A copy of the trained project whose version 1 is deployed locally (the champion), with
    a recent week whose evening demand doubled."""
    project = copy_project(trained_project.path, tmp_path / "project", with_mlflow=True)
    run_kedro(project, ["deployment"], SMALL_TRAINING)
    write_recent_window(project, EVENING_SHIFT)
    return project


def _records(project: Path) -> list[dict]:
    """Every saved record (versioned dataset), oldest first."""
    return [json.loads(p.read_text()) for p in sorted((project / RECORDS).glob("*/*.json"))]


def _job(project: Path, **params) -> RetrainingJob:
    return RetrainingJob(project, runtime_params=_merge(RETRAIN, params))


def test_a_failed_training_names_its_step_and_keeps_the_champion(served) -> None:
    """Windows longer than the data: valid parameters, so the training step itself fails."""
    with inside(served), pytest.raises(RetrainingFailed, match="step 'training'") as failed:
        _job(served, feature_engineering={"validation_days": 400}).run(force=True)
    record = failed.value.record
    assert record["status"] == "failed" and record["failed_step"] == "training"
    assert record["champion_before"] == record["champion_after"] == "1"
    assert "validation window (400 d)" in record["error"]
    assert _records(served)[-1]["failed_step"] == "training"


def test_a_wrong_parameter_stops_the_job_before_any_step(served) -> None:
    before = len(_records(served))
    with inside(served), pytest.raises(ParameterError, match="h3_resolution=99"):
        _job(served, feature_engineering={"h3_resolution": 99}).run(force=True)
    assert len(_records(served)) == before


def test_a_failed_deployment_is_resumed_by_the_next_job(served) -> None:
    """Any challenger is accepted here (a margin of -100%): what is tested is the resume."""
    accept_any = {"modeling": {"champion_challenge": {"min_improvement": -1.0}}}
    with inside(served), pytest.raises(RetrainingFailed, match="step 'deployment'") as failed:
        # SageMaker without a bucket, role or image: refused before any AWS call.
        _job(served, **accept_any).run(force=True, target="sagemaker")
    record = failed.value.record
    assert record["registered_version"] == "2" and record["champion_after"] == "1"

    with inside(served):
        resumed = _job(served).run(target="local")
    assert resumed["resumed_version"] == "2" and resumed["status"] == "promoted"
    assert [s["step"] for s in resumed["steps"]] == ["ingestion", "monitoring", "deployment"]
    assert resumed["champion_before"] == "1" and resumed["champion_after"] == "2"
    assert [r["status"] for r in _records(served)] == ["failed", "promoted"]


def test_a_held_lock_stops_a_second_job_before_it_runs_anything(served) -> None:
    with inside(served), retraining_lock(served / "data" / "retraining.lock"):
        with pytest.raises(RetrainingLocked, match="Another retraining job holds"):
            _job(served).run(force=True)
    assert _records(served) == []


def test_the_command_reports_a_skipped_job(served) -> None:
    """`kedro retrain` with nothing to do: monitoring sees no reason, the champion stays."""
    from kedro.framework.cli.cli import KedroCLI  # noqa: PLC0415

    write_recent_window(served, {})
    with inside(served):
        result = CliRunner().invoke(KedroCLI(served), ["retrain"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Retraining: skipped (champion v1 -> v1)" in result.output
    assert "decision: ok - no reason to retrain" in result.output


def test_the_first_retrain_after_make_run_deploys_the_registered_version(
    trained_project, tmp_path
) -> None:
    """`make run` registered version 1 (challenger) and deployed nothing; monitoring sees no
    reason to retrain: `kedro retrain` deploys version 1 (before: it trained a version 2 and
    printed "champion vNone -> v2")."""
    from kedro.framework.cli.cli import KedroCLI  # noqa: PLC0415

    # The session's trained sample is what `make run` leaves: version 1, challenger only.
    project = copy_project(trained_project.path, tmp_path / "project", with_mlflow=True)
    with project_mlflow(project) as client:
        challenger = client.get_model_version_by_alias("geo-busyness", "challenger")
        versions = client.search_model_versions("name='geo-busyness'")
        assert [str(v.version) for v in versions] == [str(challenger.version)] == ["1"]
        aliases = client.get_registered_model("geo-busyness").aliases
        assert {alias: str(version) for alias, version in aliases.items()} == {"challenger": "1"}
    write_recent_window(project, {})
    with inside(project):
        result = CliRunner().invoke(KedroCLI(project), ["retrain"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Retraining: promoted (champion none -> v1)" in result.output
    assert "decision: ok - no champion yet: deploying v1, registered before" in result.output
    assert "training" not in [step["step"] for step in _records(project)[-1]["steps"]]
    assert [record["status"] for record in _records(project)] == ["promoted"]
