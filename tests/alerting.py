"""Local receivers for alerts: a webhook HTTP server and moto's SNS (with an SQS queue to read
what was published), shared by the alert tests and the operations loop test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import yaml

from tests.cloud.conftest import AWS_ENV, start_moto, stop

#: The secret part of the test webhook URL: it must never reach a log line.
SECRET_PATH = "/services/T0000/B0000/s3cr3tW3bh00kP4th"
REGION = "us-east-1"


# ------------------------------------------------------------------ a local webhook receiver
@dataclass
class Webhook:
    """A local HTTP server taking webhook POSTs: what it received, the statuses to answer."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    delay_seconds: float = 0.0


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook receiver on a free loopback port, its URL ending in a secret-looking path."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append(
                {"content_type": self.headers["Content-Type"], "path": self.path, "json": body}
            )
            time.sleep(hook.delay_seconds)
            status = hook.statuses.pop(0) if hook.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def payloads(hook: Webhook) -> list[dict[str, Any]]:
    """The JSON bodies the webhook received."""
    return [json.loads(item["json"]) for item in hook.received]


def text_of(payload: dict[str, Any]) -> str:
    """A payload's ``text``: plain text, as every receiver shows it (no Slack escapes)."""
    return payload["text"]


def subscribe_queue(sns: Any, sqs: Any, topic_arn: str) -> str:
    """An SQS queue subscribed to the topic; its URL."""
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    return queue_url


def received_notifications(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """The SNS notifications waiting in the queue (envelope with Subject, Message, ...), taken
    off it: a message only received would come back after SQS's visibility timeout (30 s), in
    the next call's answer."""
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    if messages:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
                for number, message in enumerate(messages)
            ],
        )
    return [json.loads(message["Body"]) for message in messages]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """The project's moto server (tests/cloud) on a free loopback port, for SNS and SQS."""
    process, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        stop(process)


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
