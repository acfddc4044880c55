"""The retraining job's parts that need no Kedro session: lock, decision, resume, messages."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest

from geo_busyness.operations.alerts import Alert
from geo_busyness.operations.job import (
    RetrainingFailed,
    RetrainingJob,
    RetrainingLocked,
    _merge,
    alert_details,
    failure_message,
    outcome_alert,
    resumable_version,
    retraining_due,
    retraining_lock,
)
from geo_busyness.pipelines.retraining.nodes import combine_event_batches
from geo_busyness.schemas import LINE_FAULT, LINE_TEXT


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


def test_only_a_failed_job_that_registered_a_version_is_resumed() -> None:
    failed_deploy = {"status": "failed", "failed_step": "deployment", "registered_version": "4"}
    assert resumable_version(failed_deploy) == "4"
    # Training failed after its version was registered: that version is deployed, not retrained.
    assert resumable_version({**failed_deploy, "failed_step": "training"}) == "4"
    assert resumable_version({**failed_deploy, "failed_step": "monitoring"}) is None
    assert resumable_version({**failed_deploy, "registered_version": None}) is None
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


def test_a_batch_with_unreadable_lines_combines_with_a_clean_one() -> None:
    """Only one raw file had lines the parser quarantines: its two fault columns are added to
    the other batch as empty, so nothing is refused and the faulty rows keep their reason."""
    history = pd.DataFrame({"order": [1], "lat": [1.0]})
    recent = pd.DataFrame(
        {
            "order": [2, None],
            "lat": [2.0, None],
            LINE_FAULT: [None, "blank_line"],
            LINE_TEXT: [None, ""],
        }
    )
    combined = combine_event_batches(history, recent)
    assert len(combined) == 3
    assert combined[LINE_FAULT].isna().tolist() == [True, True, False]
    assert combined.loc[2, LINE_FAULT] == "blank_line"


def test_without_a_recent_batch_the_history_alone_is_retrained_on() -> None:
    history = pd.DataFrame({"order": [1, 2], "lat": [50.1, 50.2]})
    assert combine_event_batches(history, None) is history


def test_batches_with_different_columns_are_refused_by_name() -> None:
    history = pd.DataFrame({"order": [1], "lat": [50.1]})
    with pytest.raises(ValueError, match=r"\['lon'\]"):
        combine_event_batches(history, pd.DataFrame({"order": [2], "lat": [1.0], "lon": [2.0]}))


# ------------------------------------------------------------------ the job's steps, stubbed
class StubJob(RetrainingJob):
    """The job with its Kedro sessions replaced by a scripted registry and catalog."""

    def __init__(self, tmp_path, datasets, *, fail=None):
        super().__init__(tmp_path, notify=lambda *alert: self.alerts.append(alert[:2]))
        self.datasets, self.fail, self.ran, self.alerts, self.saved = datasets, fail, [], [], []
        self.champion = "1"
        self.registered: tuple[str, float] | None = None  # the challenger alias, when set

    def params(self):
        return {
            "retraining": {"force": False, "deployment_target": None, "lock_file": "job.lock"},
            "deployment": {"target": "local", "aliases": ["challenger"]},
        }

    def champion_version(self, params):
        return self.champion

    def challenger(self, params):
        return self.registered

    def run_pipeline(self, name, extra=None):
        self.ran.append((name, extra))
        if name == "retraining" and self.datasets.get("evaluation_report", {}).get(
            "registration", {}
        ).get("registered"):
            self.registered = (
                self.datasets["evaluation_report"]["registration"]["version"],
                time.time(),
            )
        if name == self.fail:
            raise RuntimeError(f"{name} broke\nsecond line")
        if name == "deployment" and not self.datasets.get("deployment_record", {}).get(
            "rolled_back"
        ):
            self.champion = extra["deployment"]["model_version"]

    def load(self, name):
        return self.datasets.get(name)

    def save_record(self, record):
        self.saved.append(record)
        self.datasets["retraining_record"] = record


VERDICT = {"retrain_recommended": True, "reasons": ["level: +30%"]}
REGISTERED = {"registration": {"registered": True, "version": "2"}, "gate": {"passed": True}}
KEPT = {
    "registration": {"registered": False},
    "gate": {"passed": False, "reasons": ["does not beat the champion (version 1)"]},
}


def test_no_reason_no_training(tmp_path) -> None:
    job = StubJob(tmp_path, {"retrain_recommended": {"retrain_recommended": False}})
    record = job.run()
    assert record["status"] == "skipped" and [r[0] for r in job.ran] == ["ingestion", "monitoring"]
    assert job.alerts == [] and job.saved == [record]


def test_a_winner_is_deployed_to_the_target_and_announced(tmp_path) -> None:
    job = StubJob(tmp_path, {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED})
    record = job.run(target="sagemaker")
    assert record["status"] == "promoted" and record["champion_after"] == "2"
    assert job.ran[-1] == (
        "deployment",
        {"deployment": {"model_version": "2", "target": "sagemaker"}},
    )
    assert record["reasons"] == ["level: +30%"]
    assert [event for event, _ in job.alerts] == ["challenger_promoted"]


def test_a_loser_keeps_the_champion_and_nothing_is_deployed(tmp_path) -> None:
    job = StubJob(tmp_path, {"retrain_recommended": VERDICT, "evaluation_report": KEPT})
    record = job.run()
    assert record["status"] == "champion_kept" and "deployment" not in [r[0] for r in job.ran]
    assert job.alerts == [
        (
            "challenger_rejected",
            "The retrained model was not registered; champion v1 keeps serving.",
        )
    ]
    # Its reasons are listed once, as the alert's reasons (before: also in its summary).
    alert = Alert(*outcome_alert(record), alert_details(record))
    assert alert.text().count("does not beat the champion (version 1)") == 1


def test_a_rolled_back_rollout_keeps_the_champion_and_is_not_resumed(tmp_path) -> None:
    rolled = {"rolled_back": True, "reason": "alarm p99-latency fired"}
    datasets = {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED}
    job = StubJob(tmp_path, datasets | {"deployment_record": rolled})
    record = job.run()
    assert record["status"] == "rolled_back" and record["champion_after"] == "1"
    assert "alarm p99-latency fired" in record["steps"][-1]["detail"]
    assert resumable_version(record) is None


@pytest.mark.parametrize("step", ["monitoring", "retraining", "deployment"])
def test_a_failed_step_is_named_and_recorded(tmp_path, step) -> None:
    job = StubJob(
        tmp_path, {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED}, fail=step
    )
    with pytest.raises(RetrainingFailed) as failed:
        job.run()
    record = failed.value.record
    named = {"retraining": "training"}.get(step, step)
    assert record["failed_step"] == named and record["error"] == f"{step} broke"
    assert record["champion_after"] == "1" and job.saved == [record]
    assert job.alerts[0][0] == "retraining_failed"


def test_a_rerun_resumes_the_failed_deployment_only(tmp_path) -> None:
    last = {"status": "failed", "failed_step": "deployment", "registered_version": "2"}
    job = StubJob(tmp_path, {"retraining_record": last})
    record = job.run()
    assert [r[0] for r in job.ran] == ["ingestion", "deployment"] and record["status"] == "promoted"
    assert record["resumed_version"] == "2" and record["champion_after"] == "2"


def test_the_first_model_skips_monitoring(tmp_path) -> None:
    job = StubJob(tmp_path, {"evaluation_report": REGISTERED})
    job.champion = None
    record = job.run()
    assert [r[0] for r in job.ran] == ["ingestion", "retraining", "deployment"]
    assert record["reasons"] == ["no champion serving yet"] and record["status"] == "promoted"
    assert job.alerts == [
        ("challenger_promoted", "Version 2 is the first champion and now serves.")
    ]


def test_the_first_job_after_make_run_deploys_the_registered_version(tmp_path) -> None:
    """`make run` registered v1 (the challenger) and deployed nothing; monitoring sees no
    reason to retrain: the job deploys v1 instead of training again (before: it trained a v2)."""
    job = StubJob(tmp_path, {"retrain_recommended": {"retrain_recommended": False}})
    job.champion, job.registered = None, ("1", 0.0)
    record = job.run()
    assert [name for name, _ in job.ran] == ["ingestion", "monitoring", "deployment"]
    assert record["status"] == "promoted" and record["pending_version"] == "1"
    assert (record["champion_before"], record["champion_after"]) == (None, "1")
    assert job.alerts == [
        (
            "challenger_promoted",
            "Version 1 was registered before, no champion served: it is the first champion"
            " and now serves.",
        )
    ]


def test_with_no_champion_a_recommended_retrain_still_trains(tmp_path) -> None:
    job = StubJob(tmp_path, {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED})
    job.champion, job.registered = None, ("1", 0.0)
    record = job.run()
    assert [name for name, _ in job.ran] == ["ingestion", "monitoring", "retraining", "deployment"]
    assert record["registered_version"] == "2" and "pending_version" not in record


def test_a_training_that_failed_after_registering_is_resumed_not_retrained(tmp_path) -> None:
    job = StubJob(
        tmp_path,
        {"retrain_recommended": VERDICT, "evaluation_report": REGISTERED},
        fail="retraining",
    )
    with pytest.raises(RetrainingFailed, match="step 'training'") as failed:
        job.run()
    assert failed.value.record["registered_version"] == "2"
    job.fail, job.ran = None, []
    record = job.run()
    assert [name for name, _ in job.ran] == ["ingestion", "deployment"]
    assert record["resumed_version"] == "2" and record["status"] == "promoted"


def test_a_job_blocked_by_the_lock_alerts_and_writes_no_record(tmp_path) -> None:
    job = StubJob(tmp_path, {"retrain_recommended": VERDICT})
    with retraining_lock(tmp_path / "job.lock"), pytest.raises(RetrainingLocked):
        job.run()
    assert job.ran == [] and job.saved == []
    ((event, summary),) = job.alerts
    assert event == "retraining_failed" and "Another retraining job holds" in summary


def test_a_failure_with_no_champion_says_so() -> None:
    record = {"failed_step": "training", "error": "boom", "champion_after": None}
    assert "No champion; see retraining_record" in failure_message(record)
    assert "None" not in failure_message(record)
