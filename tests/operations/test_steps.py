"""The retraining job's steps as the Airflow DAG's tasks run them, on the real job with its
Kedro sessions scripted (tests/operations/test_job.StubJob): the same record, alerts, lock and
resume as `kedro retrain` (issue #24 item 2)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from geo_busyness.operations.job import RetrainingFailed, RetrainingLocked, retraining_lock
from geo_busyness.operations.steps import (
    deploy,
    deployment_target,
    due,
    job_from_environment,
    last_attempt,
    monitor,
    recommended,
    registered_version,
    retrain,
)
from tests.operations.test_job import KEPT, REGISTERED, VERDICT, StubJob


def run_dag(job: StubJob, *, force: bool = False, target: str | None = None) -> dict | None:
    """The DAG's four tasks in order, as Airflow chains them (None: a short-circuit)."""
    record = due(monitor(job, force, target))
    record = retrain(job, record) if record else None
    return deploy(job, record) if record else None


def test_each_outcome_saves_the_record_and_alert_kedro_retrain_does(tmp_path):
    """The DAG's tasks and `kedro retrain` over the same scripted project: same pipeline runs,
    same record (but for times), same alerts (before: the DAG wrote no record, sent none)."""
    cases = {
        "skipped": {"retrain_recommended": {"retrain_recommended": False}},
        "promoted": {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED},
        "champion_kept": {"retrain_recommended": VERDICT, "evaluation_report": KEPT},
    }
    for status, datasets in cases.items():
        by_dag, by_job = StubJob(tmp_path, dict(datasets)), StubJob(tmp_path, dict(datasets))
        run_dag(by_dag)
        by_job.run()
        assert by_dag.ran == by_job.ran, status
        assert by_dag.alerts == by_job.alerts, status
        (dag_record,), (job_record,) = by_dag.saved, by_job.saved
        assert dag_record["status"] == job_record["status"] == status
        drop = ("started_at", "finished_at", "next")
        same = [{k: v for k, v in r.items() if k not in drop} for r in (dag_record, job_record)]
        assert same[0] == same[1], status


def test_force_and_target_reach_the_steps(tmp_path):
    job = StubJob(
        tmp_path,
        {"retrain_recommended": {"retrain_recommended": False}} | {"evaluation_report": REGISTERED},
    )
    record = run_dag(job, force=True, target="sagemaker")
    assert record["status"] == "promoted" and record["forced"] is True
    assert job.ran[-1] == (
        "deployment",
        {"deployment": {"model_version": "2", "target": "sagemaker"}},
    )


def test_a_failed_step_is_recorded_every_attempt_and_alerted_on_the_last(tmp_path):
    job = StubJob(
        tmp_path,
        {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED},
        fail="deployment",
    )
    record = due(monitor(job))
    record = retrain(job, record)
    with pytest.raises(RetrainingFailed, match="step 'deployment'"):
        deploy(job, record, last_attempt=False)
    assert job.saved[-1]["status"] == "failed" and job.alerts == []
    with pytest.raises(RetrainingFailed):
        deploy(job, record, last_attempt=True)
    assert [event for event, _ in job.alerts] == ["retraining_failed"]
    # The next run resumes the registered version, as `kedro retrain` does.
    job.fail, job.ran = None, []
    assert run_dag(job)["status"] == "promoted"
    assert [name for name, _ in job.ran] == ["ingestion", "deployment"]


def test_a_retried_training_task_resumes_from_the_version_it_registered(tmp_path):
    job = StubJob(
        tmp_path,
        {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED},
        fail="retraining",
    )
    record = due(monitor(job))
    with pytest.raises(RetrainingFailed, match="step 'training'"):
        retrain(job, record, last_attempt=False)
    job.fail = None
    retried = retrain(job, record)  # Airflow's retry: the same input record
    assert retried["registered_version"] == "2"
    assert [name for name, _ in job.ran] == [
        "ingestion",
        "monitoring",
        "retraining",
    ]  # not trained again
    assert deploy(job, retried)["status"] == "promoted"


def test_a_task_blocked_by_the_lock_alerts_as_kedro_retrain_does(tmp_path):
    by_dag, by_job = StubJob(tmp_path, {}), StubJob(tmp_path, {})
    with retraining_lock(tmp_path / "job.lock"):
        with pytest.raises(RetrainingLocked):
            monitor(by_dag)
        with pytest.raises(RetrainingLocked):
            by_job.run()
    assert by_dag.alerts == by_job.alerts and by_dag.alerts[0][0] == "retraining_failed"
    assert by_dag.saved == by_job.saved == [] and by_dag.ran == []


def test_the_last_attempt_is_read_from_the_task_instance():
    assert last_attempt(None)
    assert not last_attempt(SimpleNamespace(try_number=1, max_tries=1))
    assert last_attempt(SimpleNamespace(try_number=2, max_tries=1))


def test_a_missing_verdict_recommends_nothing():
    assert recommended(None) is False
    assert recommended({"retrain_recommended": False, "reasons": ["x"]}) is False
    assert registered_version({"registration": {"registered": True, "version": 5}}) == "5"
    assert registered_version({"gate": {"passed": False}}) is None


def test_deployment_target_order():
    params = {"retraining": {"deployment_target": None}, "deployment": {"target": "local"}}
    assert deployment_target(params, None) == "local"
    assert deployment_target(params, "sagemaker") == "sagemaker"
    params["retraining"]["deployment_target"] = "sagemaker"
    assert deployment_target(params, None) == "sagemaker"
    assert deployment_target(params, "local") == "local"


def test_the_job_comes_from_the_workers_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.setenv("GEO_BUSYNESS_PROJECT_PATH", str(tmp_path))
    job = job_from_environment("cloud")
    assert (job.project_path, job.env) == (tmp_path.resolve(), "cloud")
    monkeypatch.setenv("KEDRO_ENV", "local")
    monkeypatch.delenv("GEO_BUSYNESS_PROJECT_PATH")
    monkeypatch.chdir(tmp_path)
    job = job_from_environment("cloud")
    assert (job.project_path, job.env) == (tmp_path.resolve(), "local")
