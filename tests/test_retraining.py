"""The retraining job's parts that need no Kedro session: lock, decision, resume, messages."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from geo_busyness.pipelines.retraining.nodes import combine_event_batches
from geo_busyness.retraining import (
    RetrainingLocked,
    _merge,
    failure_message,
    resumable_version,
    retraining_due,
    retraining_lock,
)


def test_retraining_is_due_when_recommended_or_forced() -> None:
    assert retraining_due(True, False) and retraining_due(False, True)
    assert not retraining_due(False, False)


def test_a_second_job_stops_while_the_lock_is_held(tmp_path) -> None:
    lock = tmp_path / "state" / "retraining.lock"
    with retraining_lock(lock):
        with pytest.raises(RetrainingLocked, match=r"pid \d+ since"), retraining_lock(lock):
            pytest.fail("entered a held lock")
        # Another process too (flock is per open file, whatever the process).
        probe = (
            "import fcntl,sys; f=open(sys.argv[1],'a+');fcntl.flock(f, fcntl.LOCK_EX|fcntl.LOCK_NB)"
        )
        other = subprocess.run(
            [sys.executable, "-c", probe, str(lock)], capture_output=True, check=False
        )
        assert other.returncode != 0 and b"BlockingIOError" in other.stderr
    with retraining_lock(lock):  # released on exit, also after the refusal above
        pass


def test_the_lock_is_released_when_the_job_raises(tmp_path) -> None:
    lock = tmp_path / "retraining.lock"
    with pytest.raises(ValueError), retraining_lock(lock):
        raise ValueError("step failed")
    with retraining_lock(lock):
        pass


def test_only_a_failed_deployment_of_a_registered_version_is_resumed() -> None:
    failed_deploy = {"status": "failed", "failed_step": "deployment", "registered_version": "4"}
    assert resumable_version(failed_deploy) == "4"
    assert resumable_version({**failed_deploy, "failed_step": "training"}) is None
    assert resumable_version({**failed_deploy, "status": "promoted"}) is None
    assert resumable_version(None) is None


def test_failure_message_names_the_step_and_who_serves() -> None:
    record = {"failed_step": "training", "error": "boom", "champion_after": "3"}
    message = failure_message(record)
    assert "step 'training': boom" in message and "version 3) keeps serving" in message


def test_runtime_parameters_merge_key_by_key() -> None:
    merged = _merge({"deployment": {"target": "local", "x": 1}}, {"deployment": {"target": "s"}})
    assert merged == {"deployment": {"target": "s", "x": 1}}


def test_the_recent_batch_is_appended_once() -> None:
    history = pd.DataFrame({"order": [1, 2, 3], "lat": [50.1, 50.2, None]})
    recent = pd.DataFrame({"lat": [50.2, 50.4, None], "order": [2, 4, 3]})
    combined = combine_event_batches(history, recent)
    # Rows 2 and 3 (NaN included) were delivered before: only order 4 is new.
    assert combined["order"].tolist() == [1, 2, 3, 4]
    assert list(combined.columns) == ["order", "lat"]


def test_batches_with_different_columns_are_refused_by_name() -> None:
    history = pd.DataFrame({"order": [1], "lat": [50.1]})
    with pytest.raises(ValueError, match=r"\['lon'\]"):
        combine_event_batches(history, pd.DataFrame({"order": [2], "lat": [1.0], "lon": [2.0]}))
