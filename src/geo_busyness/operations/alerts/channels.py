"""Where alerts go: the ``alerts`` parameters, the credentials they name, the SNS and webhook
channels, and ``send_alert``."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from kedro.config import MissingConfigException

from geo_busyness.operations.alerts.message import EVENTS, Alert
from geo_busyness.redaction import redact

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class SnsSettings:
    """``alerts.sns``: the topic (null: no SNS), its region and endpoint, credentials entry."""

    topic_arn: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    credentials_key: str | None = None
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class WebhookSettings:
    """``alerts.webhook``: the credentials entry holding the URL, timeout and retries."""

    credentials_key: str | None = "alerts_webhook"
    timeout_seconds: float = 5.0
    retries: int = 1
    retry_wait_seconds: float = 1.0


def _settings(kind: type, block: Mapping[str, Any] | None, where: str) -> Any:
    """``kind`` built from a parameters block, unknown keys refused by name."""
    block = dict(block or {})
    unknown = sorted(set(block) - {item.name for item in fields(kind)})
    if unknown:
        raise ValueError(f"Unknown key(s) in {where}: {', '.join(unknown)}")
    return kind(**block)


@dataclass(frozen=True)
class AlertConfig:
    """The ``alerts`` parameters: off unless ``enabled``; ``events`` are the ones that send."""

    enabled: bool = False
    project: str = "geo-busyness"
    events: tuple[str, ...] = tuple(EVENTS)
    sns: SnsSettings = field(default_factory=SnsSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> AlertConfig:
        """The config from the ``alerts`` block (None: alerts off); a typo raises ``ValueError``."""
        params = dict(params or {})
        unknown = sorted(set(params) - {item.name for item in fields(cls)})
        if unknown:
            raise ValueError(f"Unknown key(s) in alerts: {', '.join(unknown)}")
        events = params.get("events")
        events = tuple(EVENTS) if events is None else tuple(events)
        bad = [event for event in events if event not in EVENTS]
        if bad:
            raise ValueError(
                f"Unknown event(s) in alerts.events: {', '.join(bad)}; known: {', '.join(EVENTS)}"
            )
        if not isinstance(params.get("enabled", False), bool):
            raise ValueError(f"alerts.enabled must be true or false, not {params['enabled']!r}")
        return cls(
            enabled=params.get("enabled", False),
            project=str(params.get("project") or "geo-busyness"),
            events=events,
            sns=_settings(SnsSettings, params.get("sns"), "alerts.sns"),
            webhook=_settings(WebhookSettings, params.get("webhook"), "alerts.webhook"),
        )

    def credentials_keys(self) -> list[str]:
        """The credentials entries the channels read (webhook URL, SNS keys)."""
        keys = [self.webhook.credentials_key, self.sns.credentials_key]
        return [key for key in keys if key]


def read_credentials(config_loader: Any) -> dict[str, Any]:
    """The project's credentials (``config_loader["credentials"]``); {} when there are none."""
    try:
        return dict(config_loader["credentials"])
    except (KeyError, MissingConfigException):  # no credentials file is a normal state
        return {}
    except Exception as error:  # noqa: BLE001 - alerts must not stop a run
        logger.warning("Alerts: the credentials could not be read (%s)", redact(error))
        return {}


def webhook_url(credentials: Mapping[str, Any] | None, key: str | None) -> str | None:
    """The webhook URL in the credentials entry ``key`` (``{url: ...}`` or a bare string)."""
    entry = (credentials or {}).get(key) if key else None
    if isinstance(entry, Mapping):
        entry = entry.get("url")
    return str(entry) if entry else None


#: Credentials entry keys (lower-cased; boto3, AWS_* and s3fs spellings) -> boto3 arguments.
_BOTO_NAMES = {
    "aws_access_key_id": "aws_access_key_id",
    "aws_secret_access_key": "aws_secret_access_key",
    "aws_session_token": "aws_session_token",
    "key": "aws_access_key_id",
    "secret": "aws_secret_access_key",
    "token": "aws_session_token",
}


def boto_credentials(entry: Mapping[str, Any] | None) -> dict[str, str]:
    """boto3 client keyword arguments from a credentials entry (other keys ignored)."""
    found = {}
    for key, value in (entry or {}).items():
        name = _BOTO_NAMES.get(str(key).lower())
        if name and value:
            found[name] = str(value)
    return found


# ------------------------------------------------------------------------------ the channels
@dataclass(frozen=True)
class Delivery:
    """What one channel did with an alert: ``ok``, attempts made, message id or problem."""

    channel: str
    ok: bool
    attempts: int = 1
    detail: str = ""


def webhook_channel(url: str) -> str:
    """How logs name a webhook: its host only (the path of a Slack URL is the secret)."""
    return f"webhook {urllib.parse.urlsplit(url).hostname or '(no host)'}"


def _post_once(url: str, body: bytes, timeout: float) -> tuple[str | None, bool]:
    """POST ``body`` once: (None, _) on success, else (the problem, whether to retry)."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by the caller
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            answer.read()
        return None, False
    except urllib.error.HTTPError as error:
        error.close()
        return f"HTTP {error.code} {error.reason}", error.code >= 500 or error.code == 429
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{type(error).__name__}: {getattr(error, 'reason', error)}", True


def post_webhook(
    alert: Alert,
    url: str,
    settings: WebhookSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST the alert's Slack-compatible JSON to ``url``; retry ``settings.retries`` times
    after a timeout, a refused connection, a 429 or a 5xx."""
    channel = webhook_channel(url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return Delivery(channel, False, 0, "the credentials entry is not an http(s) URL")
    body = json.dumps(alert.slack_payload()).encode()
    problem, attempt = "", 0
    for attempt in range(1, settings.retries + 2):
        problem, retry = _post_once(url, body, settings.timeout_seconds)
        if problem is None:
            return Delivery(channel, True, attempt)
        if not retry or attempt > settings.retries:
            break
        sleep(settings.retry_wait_seconds)
    return Delivery(channel, False, attempt, redact(str(problem).replace(url, "<webhook URL>")))


def _region_of(topic_arn: str) -> str | None:
    """The region in an SNS topic ARN (``arn:aws:sns:REGION:ACCOUNT:NAME``)."""
    parts = topic_arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def publish_sns(
    alert: Alert, settings: SnsSettings, credentials: Mapping[str, Any] | None = None
) -> Delivery:
    """Publish the alert to the topic (boto3, one retry); the message id or the problem."""
    channel = f"SNS {settings.topic_arn}"
    try:
        import boto3  # noqa: PLC0415 - boto3 only when SNS is configured
        from botocore.config import Config  # noqa: PLC0415

        client = boto3.client(
            "sns",
            region_name=settings.region or _region_of(str(settings.topic_arn)),
            endpoint_url=settings.endpoint_url,
            config=Config(
                connect_timeout=settings.timeout_seconds,
                read_timeout=settings.timeout_seconds,
                retries={"mode": "standard", "max_attempts": 2},
            ),
            **boto_credentials(credentials),
        )
        answer = client.publish(
            TopicArn=settings.topic_arn,
            Subject=alert.sns_subject(),
            Message=alert.sns_message(),
            MessageAttributes=alert.sns_attributes(),
        )
    except Exception as error:  # noqa: BLE001 - an alert that cannot go out must not fail the run
        return Delivery(channel, False, 1, redact(f"{type(error).__name__}: {error}"))
    return Delivery(channel, True, 1, str(answer.get("MessageId", "")))


def send_alert(
    alert: Alert,
    config: AlertConfig | Mapping[str, Any] | None,
    credentials: Mapping[str, Any] | None = None,
) -> list[Delivery]:
    """Send ``alert`` to every configured channel; what each did (empty when alerts are off or
    the event is not in ``alerts.events``). Failures are logged as warnings, never raised.

    ``config`` is an ``AlertConfig`` or the ``alerts`` parameters block; ``credentials`` the
    project's credentials (``read_credentials``), for the webhook URL and SNS keys.
    """
    if not isinstance(config, AlertConfig):
        config = AlertConfig.from_params(config)
    if not config.enabled or alert.event not in config.events:
        return []
    alert = alert.with_context(project=config.project)
    credentials = credentials or {}
    deliveries = []
    if config.sns.topic_arn:
        deliveries.append(
            publish_sns(alert, config.sns, credentials.get(config.sns.credentials_key or ""))
        )
    url = webhook_url(credentials, config.webhook.credentials_key)
    if url:
        deliveries.append(post_webhook(alert, url, config.webhook))
    if not deliveries:
        logger.warning(
            "Alert %s not sent: alerts are enabled but no channel is configured"
            " (alerts.sns.topic_arn, or the '%s' credentials entry)",
            alert.event,
            config.webhook.credentials_key,
        )
    for delivery in deliveries:
        if delivery.ok:
            logger.info("Alert %s sent to %s", alert.event, delivery.channel)
        else:
            logger.warning(
                "Alert %s not delivered to %s after %d attempt(s): %s",
                alert.event,
                delivery.channel,
                delivery.attempts,
                delivery.detail,
            )
    return deliveries
