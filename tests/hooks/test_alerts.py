"""AlertHook: the alerts a run's outputs and failures call for, once each, never failing the
run; and in real Kedro runs, to a local webhook server and moto's SNS."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from geo_busyness.hooks.alerts import AlertHook
from geo_busyness.hooks.storage import StorageError
from geo_busyness.operations.alerts import job_reports
from geo_busyness.testing import free_port, received_notifications
from tests.alerting import (
    SECRET_PATH,
    text_of,
    wire_alerts,
    write_credentials,
)
from tests.conftest import SMALL_TRAINING, copy_project, inside, make_project_copy, run_kedro
from tests.operations.test_alerts import GATE_REPORT, enabled


# ------------------------------------------------------------------ the hook
def fake_context(params: dict[str, Any], credentials: dict[str, Any] | None) -> Any:
    """What the hook reads of a KedroContext: params, the credentials loader, env."""
    loader = {} if credentials is None else {"credentials": credentials}
    return SimpleNamespace(params={"alerts": params}, config_loader=loader, env="local")


def node(name: str) -> Any:
    return SimpleNamespace(name=name)


def started_hook(params: dict[str, Any], credentials: dict[str, Any] | None) -> AlertHook:
    hook = AlertHook()
    hook.after_context_created(fake_context(params, credentials))
    hook.before_pipeline_run({"run_id": "session-1", "pipeline_names": ["modeling"]})
    return hook


def test_the_hook_sends_a_failed_gate_once_with_the_run_context(webhook):
    hook = started_hook(enabled(), {"alerts_webhook": {"url": webhook.url}, "other": {"k": 1}})
    assert hook._credentials == {"alerts_webhook": {"url": webhook.url}}  # only what it needs
    hook.after_node_run(node("gate_and_register"), {"evaluation_report": GATE_REPORT})
    hook.after_node_run(node("gate_and_register"), {"evaluation_report": GATE_REPORT})
    hook.after_node_run(node("build_evaluation_report"), {"evaluation_report_draft": GATE_REPORT})
    (payload,) = webhook.payloads()
    assert "gate_failed" in payload["text"]
    assert (
        "env local | pipelines modeling | node gate_and_register | run_id session-1"
        in (payload["text"])
    )


def test_inside_a_retraining_job_the_hook_leaves_failures_and_gates_to_the_job(webhook):
    """One alert per event: the job sends ``retraining_failed``/``challenger_rejected`` for a
    failed step or gate, so the run's own ``pipeline_failed``/``gate_failed`` stay quiet
    (before: both went out); a rollback is still the run's to report."""
    hook = started_hook(enabled(), {"alerts_webhook": {"url": webhook.url}})
    with job_reports():
        hook.after_node_run(node("gate_and_register"), {"evaluation_report": GATE_REPORT})
        hook.on_pipeline_error(RuntimeError("boom"))
        hook.after_node_run(node("deploy"), {"deployment_record": {"rolled_back": True}})
    assert [payload["text"].split()[2] for payload in webhook.payloads()] == [
        "deployment_rolled_back:"
    ]
    hook = started_hook(enabled(), {"alerts_webhook": {"url": webhook.url}})
    hook.on_pipeline_error(RuntimeError("boom"))  # outside a job: the run's own alert
    assert "pipeline_failed" in webhook.payloads()[-1]["text"]


def test_the_hook_is_silent_when_alerts_are_off(webhook):
    hook = started_hook({"enabled": False}, {"alerts_webhook": {"url": webhook.url}})
    hook.after_node_run(node("gate_and_register"), {"evaluation_report": GATE_REPORT})
    hook.on_pipeline_error(RuntimeError("boom"))
    assert webhook.received == []


def test_a_session_after_an_enabled_one_does_not_inherit_it(webhook):
    hook = started_hook(enabled(), {"alerts_webhook": {"url": webhook.url}})
    hook.after_context_created(fake_context({"enabled": False}, None))
    hook.after_node_run(node("gate_and_register"), {"evaluation_report": GATE_REPORT})
    assert webhook.received == []


def test_missing_credentials_turn_the_webhook_off_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="geo_busyness.hooks.alerts"):
        started_hook(enabled(), None)
        started_hook({"enabled": False}, None)
    (record,) = caplog.records
    assert "no 'alerts_webhook' entry in credentials.yml" in record.getMessage()


def test_the_hook_names_the_first_failed_node(webhook):
    hook = started_hook(enabled(), {"alerts_webhook": {"url": webhook.url}})
    hook.on_node_error(node("split_windows"))
    hook.on_node_error(node("later_node"))
    hook.on_pipeline_error(ValueError("no rows in the test window"))
    (payload,) = webhook.payloads()
    assert payload["text"].startswith(
        "[geo-busyness] CRITICAL pipeline_failed: Run failed in node split_windows: ValueError"
    )
    assert "error: no rows in the test window" in payload["text"]


def test_a_failed_load_names_the_node_that_was_loading(webhook):
    hook = started_hook(enabled(), {"alerts_webhook": {"url": webhook.url}})
    hook.before_dataset_loaded(node("clean_events"))
    hook.on_pipeline_error(FileNotFoundError("raw_events"))
    assert "Run failed in node clean_events" in webhook.payloads()[0]["text"]


def test_a_failure_after_the_loads_and_saves_names_no_node(webhook):
    hook = started_hook(enabled(), {"alerts_webhook": {"url": webhook.url}})
    hook.before_dataset_loaded(node("map_to_canonical"))
    hook.after_dataset_loaded()
    hook.before_dataset_saved(node("map_to_canonical"))
    hook.after_dataset_saved()
    hook.on_pipeline_error(RuntimeError("runner gave up"))
    assert "Run failed: RuntimeError" in webhook.payloads()[0]["text"]


def test_the_hook_never_fails_the_run(monkeypatch, caplog):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("SNS exploded")

    monkeypatch.setattr("geo_busyness.hooks.alerts.send_alert", broken)
    hook = started_hook(enabled(), {})
    with caplog.at_level(logging.WARNING, logger="geo_busyness.hooks.alerts"):
        hook.after_node_run(node("gate_and_register"), {"evaluation_report": GATE_REPORT})
        hook.after_node_run(node("odd"), {"evaluation_report": {"gate": "not a dict"}})
        hook.on_pipeline_error(RuntimeError("boom"))
    assert "gate_failed not sent (SNS exploded)" in caplog.text
    assert "pipeline_failed not sent (SNS exploded)" in caplog.text


def test_the_hook_with_a_refused_webhook_returns_and_warns(caplog):
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    hook = started_hook(enabled(), {"alerts_webhook": {"url": url}})
    with caplog.at_level(logging.WARNING):
        hook.after_node_run(node("gate_and_register"), {"evaluation_report": GATE_REPORT})
    assert "not delivered to webhook 127.0.0.1" in caplog.text
    assert SECRET_PATH not in caplog.text


def test_a_typo_in_the_alerts_block_stops_the_run_at_start_up():
    with pytest.raises(ValueError, match="alerts.events: gate_fail"):
        AlertHook().after_context_created(fake_context({"events": ["gate_fail"]}, None))


# ------------------------------------------------------------------ real Kedro runs
@pytest.mark.slow  # a real KedroSession run and the moto server
def test_a_failed_gate_in_a_kedro_run_alerts_the_webhook_and_sns(
    trained_project, tmp_path, webhook, moto_endpoint
):
    """The gate and registration nodes again with an unreachable min_r2 and alerts on: the run
    completes, the webhook (after one 500) and the SNS topic both get gate_failed."""
    project = copy_project(trained_project.path, tmp_path / "project", with_mlflow=True)
    channels = wire_alerts(project, webhook, moto_endpoint)
    webhook.statuses = [500]  # the first attempt fails; the retry delivers
    params = {
        **SMALL_TRAINING,
        "modeling": {**SMALL_TRAINING["modeling"], "min_r2": 1.01},
        "alerts": channels.params,
    }
    with inside(project):
        bootstrap_project(project)
        with KedroSession.create(project_path=project, runtime_params=params) as session:
            session.run(
                pipeline_names=["modeling"],
                node_names=["build_evaluation_report", "gate_and_register"],
            )
            # through the catalog: wherever (and however versioned) the run's report is saved
            report = session.load_context().catalog.load("evaluation_report")
    assert report["gate"]["passed"] is False  # the run finished and saved its report
    reason = next(r for r in report["gate"]["reasons"] if "min_r2 1.01" in r)

    assert len(webhook.received) == 2
    payload = webhook.payloads()[-1]
    assert payload["text"].startswith("[geo-busyness] WARNING gate_failed")
    assert reason in text_of(payload)
    assert {block["type"] for block in payload["blocks"]} <= {"header", "section", "context"}

    (notification,) = received_notifications(channels.sqs, channels.queue_url)
    message = json.loads(notification["Message"])
    assert message["event"] == "gate_failed"
    assert reason in message["details"]["reasons"]
    assert message["context"]["node"] == "gate_and_register"
    assert message["context"]["pipelines"] == ["modeling"]
    assert message["context"]["mlflow_run_id"] == report["registration"]["run_id"]


@pytest.mark.slow  # a real KedroSession run
def test_a_failed_kedro_run_alerts_naming_the_node_and_fails_as_before(tmp_path, webhook):
    """data_processing with no raw file: the webhook hears pipeline_failed naming the node
    that was loading, and the run still raises the project's one-sentence StorageError."""
    project = make_project_copy(tmp_path / "project")
    write_credentials(project, {"alerts_webhook": {"url": webhook.url}})
    with pytest.raises(StorageError, match="Could not load dataset 'raw_events'"):
        run_kedro(project, ["data_processing"], {"alerts": {"enabled": True}})
    (payload,) = webhook.payloads()
    assert payload["text"].startswith(
        "[geo-busyness] CRITICAL pipeline_failed: Run failed in node map_to_canonical"
    )
    assert "courier_events.csv" in payload["text"]
