"""Alerts: a message to an SNS topic and/or a Slack-compatible webhook when a person is needed.

``message.EVENTS`` lists every event an alert may carry, with its default severity; adding one
is one line there. ``hooks.AlertHook`` raises the run's own (``run_events``): monitoring
recommends retraining, the quality gate fails, a deployment rolls back, a run fails. Other code
(the retraining job) builds an ``Alert`` and calls ``send_alert`` (``channels``); while a
retraining job runs a pipeline (``job_reports``), its failure and failed gate are the job's to
report (``retraining_failed``, ``challenger_rejected``) and the hook does not send them.

Configuration is the ``alerts`` parameters block (``conf/base/parameters_alerts.yml``), off by
default. The webhook URL is a secret: it lives in credentials.yml, under the key the parameters
name. SNS uses the usual AWS credential chain, or a credentials.yml entry. A delivery that fails
is logged as a warning naming the channel (never the webhook URL) and never fails the run.
"""

from geo_busyness.operations.alerts.channels import (
    AlertConfig,
    Delivery,
    SnsSettings,
    WebhookSettings,
    boto_credentials,
    post_webhook,
    publish_sns,
    read_credentials,
    send_alert,
    webhook_url,
)
from geo_busyness.operations.alerts.message import EVENTS, SEVERITIES, Alert
from geo_busyness.operations.alerts.run_events import (
    JOB_REPORTED_EVENTS,
    ROLLBACK_OUTPUTS,
    alerts_from_outputs,
    failure_alert,
    gate_alert,
    job_reports,
    reported_by_job,
    retrain_alert,
    rollback_alert,
    rolled_back,
)

__all__ = [
    "EVENTS",
    "JOB_REPORTED_EVENTS",
    "ROLLBACK_OUTPUTS",
    "SEVERITIES",
    "Alert",
    "AlertConfig",
    "Delivery",
    "SnsSettings",
    "WebhookSettings",
    "alerts_from_outputs",
    "boto_credentials",
    "failure_alert",
    "gate_alert",
    "job_reports",
    "post_webhook",
    "publish_sns",
    "read_credentials",
    "reported_by_job",
    "retrain_alert",
    "rollback_alert",
    "rolled_back",
    "send_alert",
    "webhook_url",
]
