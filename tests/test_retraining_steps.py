"""The retraining job's steps as the Airflow DAG's tasks run them, on a stand-in job (no Kedro)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from geo_busyness.retraining import RetrainingLocked, retraining_lock
from geo_busyness.retraining_steps import (
    deploy,
    deployment_target,
    job_from_environment,
    monitor,
    recommended,
    registered_version,
    retrain,
)

LOCK = "state/retraining.lock"


class StandInJob:
    """What the steps use of RetrainingJob; records the pipelines run and whether the lock was
    held while each ran."""

    def __init__(self, project_path: Path, champion: str | None = "3", **datasets: Any) -> None:
        self.project_path = project_path
        self.champion = champion
        self.datasets = datasets
        self.runs: list[tuple[str, dict[str, Any] | None, bool]] = []
        self.settings = {"lock_file": LOCK, "deployment_target": None}

    def params(self) -> dict[str, Any]:
        return {"retraining": dict(self.settings), "deployment": {"target": "local"}}

    def champion_version(self, params: dict[str, Any]) -> str | None:
        return self.champion

    def run_pipeline(self, name: str, extra: dict[str, Any] | None = None) -> None:
        try:
            with retraining_lock(self.project_path / LOCK):
                locked = False
        except RetrainingLocked:
            locked = True
        self.runs.append((name, extra, locked))

    def load(self, name: str) -> Any:
        return self.datasets.get(name)


def test_monitor_runs_monitoring_under_the_lock_and_reads_its_verdict(tmp_path):
    for verdict in (True, False):
        job = StandInJob(
            tmp_path, retrain_recommended={"retrain_recommended": verdict, "reasons": []}
        )
        assert monitor(job) is verdict
        assert job.runs == [("monitoring", None, True)]


def test_monitor_with_no_champion_trains_the_first_one_without_monitoring(tmp_path):
    job = StandInJob(tmp_path, champion=None)
    assert monitor(job) is True
    assert job.runs == []


def test_a_missing_verdict_recommends_nothing():
    assert recommended(None) is False
    assert recommended({"retrain_recommended": False, "reasons": ["x"]}) is False


def test_a_step_stops_while_kedro_retrain_holds_the_lock(tmp_path):
    job = StandInJob(tmp_path, retrain_recommended={"retrain_recommended": True})
    with retraining_lock(tmp_path / LOCK), pytest.raises(RetrainingLocked):
        monitor(job)
    assert job.runs == []


def test_retrain_returns_the_registered_version_or_none(tmp_path):
    job = StandInJob(
        tmp_path, evaluation_report={"registration": {"registered": True, "version": 5}}
    )
    assert retrain(job) == "5"
    assert job.runs == [("retraining", None, True)]
    assert registered_version({"registration": {"registered": False, "version": None}}) is None
    assert registered_version({"gate": {"passed": False}}) is None
    assert registered_version(None) is None


def test_deploy_sends_the_version_to_the_requested_or_configured_target(tmp_path):
    job = StandInJob(tmp_path)
    assert deploy(job, "5") == "local"
    assert deploy(job, "5", "sagemaker") == "sagemaker"
    job.settings["deployment_target"] = "sagemaker"
    assert deploy(job, "6") == "sagemaker"
    assert job.runs == [
        ("deployment", {"deployment": {"model_version": "5", "target": "local"}}, True),
        ("deployment", {"deployment": {"model_version": "5", "target": "sagemaker"}}, True),
        ("deployment", {"deployment": {"model_version": "6", "target": "sagemaker"}}, True),
    ]


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
    assert (job.project_path, job.env) == (tmp_path, "cloud")
    monkeypatch.setenv("KEDRO_ENV", "local")
    monkeypatch.delenv("GEO_BUSYNESS_PROJECT_PATH")
    monkeypatch.chdir(tmp_path)
    job = job_from_environment("cloud")
    assert (job.project_path, job.env) == (tmp_path, "local")
