"""Alerts: the message, the configuration, the two channels on real local servers (an HTTP
server for the webhook, moto for SNS); the hook that raises them is tested in
tests/hooks/test_alerts.py."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from geo_busyness.operations import alerts as alerts_module
from geo_busyness.operations.alerts import (
    EVENTS,
    Alert,
    AlertConfig,
    SnsSettings,
    WebhookSettings,
    alerts_from_outputs,
    boto_credentials,
    failure_alert,
    post_webhook,
    publish_sns,
    read_credentials,
    rolled_back,
    send_alert,
)
from geo_busyness.testing import PROJECT_ROOT, free_port, received_notifications
from tests.alerting import (
    REGION,
    SECRET_PATH,
    subscribe_queue,
    text_of,
)

GATE_REPORT = {
    "gate": {
        "passed": False,
        "min_r2": 1.01,
        "rule": "test R2 >= min_r2 and ...",
        "reasons": ["test R2 0.6123 < min_r2 1.01", "day-ahead 1-6h P50 MAE 3.1 >= 2.9"],
    },
    "test": {"model": {"r2": 0.6123, "mae": 3.1}},
    "registration": {"registered": False, "run_id": "abc123"},
}
VERDICT = {
    "retrain_recommended": True,
    "reasons": ["psi hour_of_day 0.09 > 0.05"],
    "model_name": "geo-busyness",
    "model_version": "3",
}
MONITORING_REPORT = {
    "retrain_recommended": True,
    "reasons": ["psi hour_of_day 0.09 > 0.05", "unseen cell share 7.0% > 5.0%"],
    "model": {"model_name": "geo-busyness", "version": "3"},
}


def enabled(**overrides: Any) -> dict[str, Any]:
    """An ``alerts`` block that sends, with fast retries."""
    block = {"enabled": True, "webhook": {"retry_wait_seconds": 0.0, "timeout_seconds": 2}}
    return {**block, **overrides}


def gate_alert_for_test() -> Alert:
    (alert,) = alerts_from_outputs({"evaluation_report": GATE_REPORT}, {"env": "local"})
    return alert


# ------------------------------------------------------------------ the message
def test_an_alert_takes_only_listed_events_and_their_default_severity():
    assert Alert("gate_failed", "x").severity == EVENTS["gate_failed"]
    assert Alert("pipeline_failed", "x").severity == "critical"
    assert Alert("gate_failed", "x", severity="info").severity == "info"
    with pytest.raises(ValueError, match="Unknown alert event 'gate_faild'.*gate_failed"):
        Alert("gate_faild", "x")
    with pytest.raises(ValueError, match="Unknown severity"):
        Alert("gate_failed", "x", severity="loud")


def test_adding_an_event_is_one_entry_in_events(monkeypatch):
    monkeypatch.setitem(EVENTS, "backfill_done", "info")
    assert Alert("backfill_done", "done").severity == "info"
    assert AlertConfig.from_params({"events": ["backfill_done"]}).events == ("backfill_done",)


def test_the_text_has_headline_reasons_details_and_context():
    alert = Alert(
        "gate_failed",
        "Quality gate failed",
        {"reasons": ["r2 low", "mae high"], "min_r2": 0.6, "unused": None},
        {"project": "geo-busyness (prod)", "env": "cloud", "pipelines": ["modeling"]},
    )
    lines = alert.text().splitlines()
    assert lines[0] == "[geo-busyness (prod)] WARNING gate_failed: Quality gate failed"
    assert lines[1:3] == ["- r2 low", "- mae high"]
    assert "min_r2: 0.6" in lines
    assert not any("unused" in line for line in lines)
    assert lines[-1] == "env cloud | pipelines modeling"


def test_the_webhook_payload_is_slack_compatible_escaped_only_in_slack_blocks():
    """The blocks are Slack's mrkdwn (escaped); ``text`` is what other receivers show: plain,
    no ``&lt;`` (before: the escaped text reached every receiver)."""
    alert = Alert(
        "gate_failed", "R2 < min_r2 & more", {"reasons": ["a <=b>"] * 3, "min_r2": 0.6}, {}
    )
    payload = alert.slack_payload()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["text"].startswith("[geo-busyness] WARNING gate_failed: R2 < min_r2 & more")
    assert payload["text"] == alert.text() and "&lt;" not in payload["text"]
    assert "- a <=b>" in payload["text"]
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    header, summary, facts, _ = payload["blocks"]
    assert header["text"]["type"] == "plain_text" and len(header["text"]["text"]) <= 150
    assert "gate_failed" in header["text"]["text"]
    assert summary["text"]["text"].startswith("R2 &lt; min_r2 &amp; more\n• a &lt;=b&gt;")
    assert facts["fields"] == [{"type": "mrkdwn", "text": "*min_r2*\n0.6"}]


def test_long_reasons_fit_slack_and_sns_limits():
    alert = Alert("retrain_recommended", "é" * 300, {"reasons": ["x" * 500] * 20})
    payload = alert.slack_payload()
    assert all(len(block["text"]["text"]) <= 3000 for block in payload["blocks"][:2])
    subject = alert.sns_subject()
    assert len(subject) <= 100 and subject.isascii() and "\n" not in subject


def test_the_sns_message_is_the_alert_as_json_with_its_text():
    alert = gate_alert_for_test().with_context(project="p")
    message = json.loads(alert.sns_message())
    assert message["event"] == "gate_failed" and message["project"] == "p"
    assert message["details"]["reasons"] == GATE_REPORT["gate"]["reasons"]
    assert message["text"] == alert.text()
    assert alert.sns_attributes()["event"] == {"DataType": "String", "StringValue": "gate_failed"}


# ------------------------------------------------------------------ the run's events
def test_a_failed_gate_is_an_alert_and_a_passed_one_is_not():
    alert = gate_alert_for_test()
    assert alert.event == "gate_failed"
    assert alert.reasons == GATE_REPORT["gate"]["reasons"]
    assert alert.details["min_r2"] == 1.01 and alert.details["training_run_id"] == "abc123"
    passed = {**GATE_REPORT, "gate": {**GATE_REPORT["gate"], "passed": True}}
    assert alerts_from_outputs({"evaluation_report": passed}) == []
    # The draft holds the same gate: only the final report alerts (once per run).
    assert alerts_from_outputs({"evaluation_report_draft": GATE_REPORT}) == []


def test_a_challenger_that_only_ties_the_champion_is_no_gate_alert():
    """Passed the baselines, did not beat the serving champion: unchanged, not a failure."""
    kept = {
        **GATE_REPORT,
        "gate": {
            **GATE_REPORT["gate"],
            "baseline_gate_passed": True,
            "champion_comparison": {
                "status": "scored",
                "challenger_wins": False,
                "version": "1",
                "metric": "gate_loss",
                "challenger": 0.9,
                "champion": 0.9,
            },
        },
    }
    assert alerts_from_outputs({"evaluation_report": kept}) == []


def test_retraining_recommended_carries_the_monitoring_reports_reasons():
    outputs = {"retrain_recommended": VERDICT, "monitoring_report": MONITORING_REPORT}
    (alert,) = alerts_from_outputs(outputs)
    assert alert.event == "retrain_recommended"
    assert alert.reasons == MONITORING_REPORT["reasons"]
    assert "geo-busyness version 3: 2 check(s) fired" in alert.summary
    (alone,) = alerts_from_outputs({"retrain_recommended": VERDICT})
    assert alone.reasons == VERDICT["reasons"]
    quiet = {"retrain_recommended": {**VERDICT, "retrain_recommended": False}}
    assert alerts_from_outputs(quiet) == []


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ({"rolled_back": True}, True),
        ({"status": "rolled_back"}, True),
        ({"deployment": {"rolled_back": True}}, True),  # the record nests the outcome
        ({"status": "InService", "action": "updated"}, False),  # what a good rollout writes
        ({"rolled_back": "yes"}, False),
        (None, False),
    ],
)
def test_rollback_outcomes(outcome, expected):
    assert rolled_back(outcome) is expected


def test_a_rolled_back_outcome_names_the_endpoint_and_reason():
    outcome = {
        "target": "sagemaker",
        "status": "rolled_back",
        "endpoint_name": "geo-busyness",
        "reason": "canary 5xx rate 12% > 1%",
        "model_name": "geo-busyness",
        "version": "7",
    }
    (alert,) = alerts_from_outputs({"deployment_outcome": outcome})
    assert alert.event == "deployment_rolled_back" and alert.severity == "critical"
    assert alert.summary == "Deployment of geo-busyness version 7 on geo-busyness rolled back"
    assert alert.reasons == ["canary 5xx rate 12% > 1%"]


class DeploymentError(RuntimeError):
    """Stands for the deployment pipeline's error (the hook matches it by name)."""


def test_a_failed_run_names_the_node_and_a_rollback_error_is_a_rollback():
    failed = failure_alert(ValueError("bad https://u:pw@host/x"), "clean_events", {"env": "e"})
    assert failed.event == "pipeline_failed"
    assert failed.summary == "Run failed in node clean_events: ValueError"
    assert failed.context == {"env": "e", "node": "clean_events"}
    assert "pw" not in failed.details["error"]  # credentials in URIs are masked
    rollback = DeploymentError("Update failed (x). Rolled back: cfg-6 serves again.")
    wrapped = RuntimeError("node failed")
    wrapped.__cause__ = rollback
    alert = failure_alert(wrapped, "deploy_package")
    assert alert.event == "deployment_rolled_back"
    assert "cfg-6 serves again" in alert.reasons[0]
    stuck = failure_alert(DeploymentError("Endpoint x is Failed instead of serving y"))
    assert stuck.event == "pipeline_failed"


# ------------------------------------------------------------------ configuration
def test_the_base_parameters_turn_alerts_off_and_select_every_event():
    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_alerts.yml").read_text())
    config = AlertConfig.from_params(params["alerts"])
    assert config.enabled is False
    assert config.events == tuple(EVENTS)
    assert config.sns == SnsSettings()
    assert config.webhook == WebhookSettings()
    assert config.credentials_keys() == ["alerts_webhook"]


def test_config_typos_are_refused_by_name():
    with pytest.raises(ValueError, match="alerts.events: gate_fail;"):
        AlertConfig.from_params({"events": ["gate_fail"]})
    with pytest.raises(ValueError, match="alerts.sns: topic"):
        AlertConfig.from_params({"sns": {"topic": "arn"}})
    with pytest.raises(ValueError, match="in alerts: enable"):
        AlertConfig.from_params({"enable": True})
    with pytest.raises(ValueError, match="alerts.enabled must be true or false, not 'false'"):
        AlertConfig.from_params({"enabled": "false"})
    assert AlertConfig.from_params(None).enabled is False


def test_credentials_entries_map_to_boto3_arguments():
    assert boto_credentials({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}) == {
        "aws_access_key_id": "a",
        "aws_secret_access_key": "b",
    }
    assert boto_credentials({"key": "a", "secret": "b", "region": "x", "token": None}) == {
        "aws_access_key_id": "a",
        "aws_secret_access_key": "b",
    }
    assert read_credentials({}) == {}  # no credentials file


def test_unreadable_credentials_are_a_warning(caplog):
    class Loader:
        def __getitem__(self, key: str) -> Any:
            raise ValueError("Environment variable 'ALERTS_WEBHOOK_URL' not found")

    with caplog.at_level(logging.WARNING, logger="geo_busyness.operations.alerts"):
        assert read_credentials(Loader()) == {}
    assert "credentials could not be read" in caplog.text and "ALERTS_WEBHOOK_URL" in caplog.text


def test_nothing_is_sent_when_off_or_not_selected(webhook):
    credentials = {"alerts_webhook": {"url": webhook.url}}
    alert = gate_alert_for_test()
    assert send_alert(alert, {"enabled": False}, credentials) == []
    assert send_alert(alert, enabled(events=["pipeline_failed"]), credentials) == []
    assert webhook.received == []


def test_enabled_without_a_channel_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="geo_busyness.operations.alerts"):
        assert send_alert(gate_alert_for_test(), enabled(), {}) == []
    assert "no channel is configured" in caplog.text


# ------------------------------------------------------------------ the webhook channel
def test_the_webhook_receives_slack_json_with_the_event_and_reasons(webhook, caplog):
    credentials = {"alerts_webhook": {"url": webhook.url}}
    with caplog.at_level(logging.INFO, logger="geo_busyness.operations.alerts"):
        (delivery,) = send_alert(gate_alert_for_test(), enabled(), credentials)
    assert delivery.ok and delivery.attempts == 1
    (request,) = webhook.received
    assert request["content_type"] == "application/json" and request["path"] == SECRET_PATH
    (payload,) = webhook.payloads()
    assert set(payload) == {"text", "blocks"}
    assert "gate_failed" in payload["text"]
    assert all(reason in text_of(payload) for reason in GATE_REPORT["gate"]["reasons"])
    assert "Alert gate_failed sent to webhook 127.0.0.1" in caplog.text
    assert SECRET_PATH not in caplog.text


def test_a_bare_url_string_is_accepted_as_the_credentials_entry(webhook):
    (delivery,) = send_alert(gate_alert_for_test(), enabled(), {"alerts_webhook": webhook.url})
    assert delivery.ok and len(webhook.received) == 1


def test_a_5xx_is_retried_once(webhook):
    webhook.statuses = [503]
    (delivery,) = send_alert(
        gate_alert_for_test(), enabled(), {"alerts_webhook": {"url": webhook.url}}
    )
    assert delivery.ok and delivery.attempts == 2
    assert len(webhook.received) == 2


def test_a_webhook_that_keeps_failing_is_a_warning_without_the_url(webhook, caplog):
    webhook.statuses = [500, 500, 500]
    with caplog.at_level(logging.WARNING, logger="geo_busyness.operations.alerts"):
        (delivery,) = send_alert(
            gate_alert_for_test(), enabled(), {"alerts_webhook": {"url": webhook.url}}
        )
    assert not delivery.ok and delivery.attempts == 2 and len(webhook.received) == 2
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "Alert gate_failed not delivered to webhook 127.0.0.1 after 2 attempt(s):"
        " HTTP 500 Internal Server Error"
    )


def test_a_client_error_is_not_retried(webhook):
    webhook.statuses = [404]
    (delivery,) = send_alert(
        gate_alert_for_test(), enabled(), {"alerts_webhook": {"url": webhook.url}}
    )
    assert not delivery.ok and delivery.attempts == 1 and "HTTP 404" in delivery.detail


def test_a_refused_connection_is_retried_then_a_warning(caplog):
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    waits: list[float] = []
    settings = WebhookSettings(retry_wait_seconds=0.25, timeout_seconds=2)
    with caplog.at_level(logging.WARNING, logger="geo_busyness.operations.alerts"):
        delivery = post_webhook(gate_alert_for_test(), url, settings, sleep=waits.append)
    assert not delivery.ok and delivery.attempts == 2 and waits == [0.25]
    assert "refused" in delivery.detail.lower()
    assert SECRET_PATH not in delivery.detail


def test_a_webhook_slower_than_the_timeout_gives_up(webhook):
    webhook.delay_seconds = 1.0
    settings = WebhookSettings(timeout_seconds=0.2, retries=0)
    started = time.monotonic()
    delivery = post_webhook(gate_alert_for_test(), webhook.url, settings)
    assert not delivery.ok and "timed out" in delivery.detail.lower()
    assert time.monotonic() - started < 1.0


def test_a_non_http_url_is_refused_without_naming_it():
    delivery = post_webhook(gate_alert_for_test(), "file:///etc/passwd", WebhookSettings())
    assert not delivery.ok and "passwd" not in delivery.detail


# ------------------------------------------------------------------ the SNS channel (moto)
@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS with test credentials (nothing leaves the process)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def test_sns_publishes_the_alert_to_the_topic(aws):
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="geo-busyness-alerts")["TopicArn"]
    queue_url = subscribe_queue(sns, sqs, topic_arn)
    params = enabled(sns={"topic_arn": topic_arn}, webhook={"credentials_key": None})
    (delivery,) = send_alert(gate_alert_for_test(), params, {})
    assert delivery.ok and delivery.channel == f"SNS {topic_arn}" and delivery.detail
    (notification,) = received_notifications(sqs, queue_url)
    assert notification["Subject"].startswith("[geo-busyness] gate_failed: Quality gate failed")
    message = json.loads(notification["Message"])
    assert message["event"] == "gate_failed"
    assert message["details"]["reasons"] == GATE_REPORT["gate"]["reasons"]
    assert notification["MessageAttributes"]["severity"]["Value"] == "warning"


def test_sns_to_a_missing_topic_is_a_warning(aws, caplog):
    settings = SnsSettings(topic_arn=f"arn:aws:sns:{REGION}:123456789012:nowhere")
    with caplog.at_level(logging.WARNING, logger="geo_busyness.operations.alerts"):
        delivery = publish_sns(gate_alert_for_test(), settings)
    assert not delivery.ok and "NotFound" in delivery.detail


def test_the_module_lists_the_retraining_jobs_events():
    for event in ("retraining_failed", "challenger_promoted", "challenger_rejected"):
        assert event in alerts_module.EVENTS
