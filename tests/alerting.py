"""Local receivers for alerts: a webhook HTTP server and moto's SNS (with an SQS queue to read
what was published), shared by the alert tests and the operations loop test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import yaml

from geo_busyness.testing import LocalWebhook, start_moto, stop_process_group, subscribe_queue
from tests.cloud.conftest import AWS_ENV

#: The secret part of the test webhook URL: it must never reach a log line.
SECRET_PATH = "/services/T0000/B0000/s3cr3tW3bh00kP4th"
REGION = "us-east-1"


# ------------------------------------------------------------------ a local webhook receiver
#: The tests' receiver: ``geo_busyness.testing.LocalWebhook`` (the soak benchmark uses it too).
Webhook = LocalWebhook


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook receiver on a free loopback port, its URL ending in a secret-looking path."""
    with LocalWebhook(SECRET_PATH) as hook:
        yield hook


def text_of(payload: dict[str, Any]) -> str:
    """A payload's ``text``: plain text, as every receiver shows it (no Slack escapes)."""
    return payload["text"]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """The project's moto server (tests/cloud) on a free loopback port, for SNS and SQS."""
    process, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        stop_process_group(process)


def moto_client(service: str, endpoint: str) -> Any:
    """A boto3 client on the moto server, with the test credentials."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def write_credentials(project: Any, entries: dict[str, Any]) -> None:
    """The project copy's conf/local/credentials.yml (where a user keeps the webhook URL)."""
    (project / "conf" / "local" / "credentials.yml").write_text(yaml.safe_dump(entries))


@dataclass
class AlertChannels:
    """A project wired to the local receivers: the ``alerts`` parameters that send to them, and
    the SQS queue subscribed to the SNS topic."""

    params: dict[str, Any]
    sqs: Any
    queue_url: str


def wire_alerts(project: Any, webhook: Webhook, endpoint: str) -> AlertChannels:
    """An SNS topic (with a queue) on the moto server and the project's credentials.yml holding
    the webhook URL and the SNS keys; alerts enabled, retries without waiting."""
    sns, sqs = moto_client("sns", endpoint), moto_client("sqs", endpoint)
    topic_arn = sns.create_topic(Name="geo-busyness-alerts")["TopicArn"]
    queue_url = subscribe_queue(sns, sqs, topic_arn)
    write_credentials(
        project,
        {
            "alerts_webhook": {"url": webhook.url},
            "alerts_aws": {
                "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            },
        },
    )
    params = {
        "enabled": True,
        "sns": {"topic_arn": topic_arn, "endpoint_url": endpoint, "credentials_key": "alerts_aws"},
        "webhook": {"retry_wait_seconds": 0},
    }
    return AlertChannels(params, sqs, queue_url)
