"""Issue #23 item 7: runs killed with kill -9 no longer stay RUNNING in MLflow.

Each run is tagged with its owner process (pid@host and what tells that process apart from a
later one with the same pid); the next run's start marks the experiment's runs whose owner is
certainly gone FAILED, and those it cannot check only when they are a day old. A run whose
owner is alive is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from geo_busyness.hooks.tracking import TrackingServerHook
from geo_busyness.registry import (
    CLOSED_TAG,
    OWNER_PROCESS_TAG,
    OWNER_TAG,
    STALE_AFTER_S,
    fail_stale_runs,
    owner_state,
    owner_tags,
    stale_reason,
)
from geo_busyness.testing import tracking_uri
from tests.conftest import generation_params, make_project_copy

HOST = "worker-1"
ME = os.getpid()
#: Identities as process_identity gives them ("boot/pid namespace/start ticks").
IDENTITIES = {ME: "boot-a/pid:[1]/100", 42: "boot-a/pid:[1]/700"}


def tags(pid: int = 42, host: str = HOST, process: str = "boot-a/pid:[1]/700") -> dict[str, str]:
    return {OWNER_TAG: f"{pid}@{host}", OWNER_PROCESS_TAG: process}


@pytest.mark.parametrize(
    ("run_tags", "table", "expected"),
    [
        (tags(), IDENTITIES, "alive"),
        (tags(), {ME: IDENTITIES[ME]}, "gone"),  # pid 42 is free
        (tags(), {**IDENTITIES, 42: "boot-a/pid:[1]/900"}, "gone"),  # pid reused since
        (tags(host="worker-2"), {ME: IDENTITIES[ME]}, "unknown"),  # another machine
        (tags(process="boot-b/pid:[1]/700"), {ME: IDENTITIES[ME]}, "unknown"),  # another boot
        (tags(process="boot-a/pid:[2]/700"), {ME: IDENTITIES[ME]}, "unknown"),  # container
        ({}, {ME: IDENTITIES[ME]}, "unknown"),  # started before owners were recorded
        (tags(), {}, "unknown"),  # no /proc here
    ],
)
def test_owner_state(run_tags, table, expected):
    assert owner_state(run_tags, HOST, table.get) == expected


def test_only_a_gone_owner_or_a_day_of_silence_makes_a_run_stale():
    now = 1_000_000.0
    young, old = now - 60, now - STALE_AFTER_S - 60
    this_host = socket.gethostname()
    dead = owner_tags(ME) | {OWNER_TAG: f"999999999@{this_host}"}  # no such pid
    alive = owner_tags(ME)
    elsewhere = tags(host="worker-2")
    assert "is gone" in stale_reason(dead, young, now, this_host)
    assert stale_reason(alive, old, now, this_host) is None
    assert stale_reason(elsewhere, young, now, this_host) is None
    assert "cannot be checked" in stale_reason(elsewhere, old, now, this_host)
    assert "no owner recorded" in stale_reason({}, old, now, this_host)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MlflowClient]:
    """A fresh SQLite MLflow store, the process's tracking URI while the test runs."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        yield MlflowClient()
    finally:
        mlflow.set_tracking_uri(previous)


def _dead_process_tags() -> dict[str, str]:
    """The owner tags of a real process of this machine that has since been killed."""
    process = subprocess.Popen(["sleep", "60"])  # noqa: S607
    recorded = owner_tags(process.pid)
    process.kill()
    process.wait()
    return recorded


@pytest.mark.slow
def test_fail_stale_runs_closes_the_dead_and_the_day_old_never_the_live(store):
    experiment = store.create_experiment("stale")
    now_ms = int(time.time() * 1000)

    def run(run_tags: dict[str, str], started_ms: int = now_ms) -> str:
        return store.create_run(experiment, start_time=started_ms, tags=run_tags).info.run_id

    killed = run(_dead_process_tags())
    live = run(owner_tags())
    untagged_young = run({})
    untagged_old = run({}, now_ms - int((STALE_AFTER_S + 3600) * 1000))
    elsewhere = run(tags(host="another-machine"))
    finished = run(_dead_process_tags())
    store.set_terminated(finished, "FINISHED")

    closed = fail_stale_runs(experiment)

    assert set(closed) == {killed, untagged_old}
    status = {run_id: store.get_run(run_id).info.status for run_id in (killed, live)}
    assert status == {killed: "FAILED", live: "RUNNING"}
    for run_id in (untagged_young, elsewhere):
        assert store.get_run(run_id).info.status == "RUNNING"
    assert store.get_run(finished).info.status == "FINISHED"
    assert "is gone" in store.get_run(killed).data.tags[CLOSED_TAG]


@pytest.mark.slow
def test_the_hook_tags_its_run_and_closes_a_killed_one(store):
    experiment = store.create_experiment("hooked")
    killed = store.create_run(experiment, tags=_dead_process_tags()).info.run_id
    with mlflow.start_run(experiment_id=experiment) as own:
        TrackingServerHook().before_pipeline_run()
        assert store.get_run(own.info.run_id).data.tags[OWNER_TAG] == owner_tags()[OWNER_TAG]
        assert store.get_run(own.info.run_id).info.status == "RUNNING"
    assert store.get_run(killed).info.status == "FAILED"


def _running_owned_runs(database: Path) -> list[str]:
    """Run ids of the store's RUNNING runs that carry an owner tag (read without MLflow)."""
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database) as connection:
            rows = connection.execute(
                "SELECT runs.run_uuid FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid"
                " WHERE runs.status = 'RUNNING' AND tags.key = ?",
                (OWNER_TAG,),
            ).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    return [row[0] for row in rows]


@pytest.mark.slow
def test_a_run_killed_with_kill_9_is_failed_at_the_next_start(tmp_path):
    """The report: kill -9 a `kedro run`; its run stayed RUNNING. Now the next run closes it."""
    project = make_project_copy(tmp_path / "project")
    (project / "conf" / "local" / "parameters_data_generation.yml").write_text(
        "data_generation:\n  n_events: 3000000\n"  # long enough to be killed mid-run
    )
    kedro = str(Path(sys.executable).with_name("kedro"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    victim = subprocess.Popen(  # noqa: S603
        [kedro, "run", "--pipelines", "data_generation"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    database = project / "mlflow.db"
    try:
        deadline = time.monotonic() + 120
        while not (running := _running_owned_runs(database)):
            assert victim.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no tagged run appeared"
            time.sleep(0.5)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    (project / "conf" / "local" / "parameters_data_generation.yml").write_text(
        yaml.safe_dump(generation_params(n_events=2000, weeks=1))
    )
    subprocess.run(  # noqa: S603
        [kedro, "run", "--pipelines", "data_generation"],
        cwd=project,
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    )
    killed = MlflowClient(tracking_uri=tracking_uri(project)).get_run(running[0])
    assert killed.info.status == "FAILED"
    assert "is gone" in killed.data.tags[CLOSED_TAG]
