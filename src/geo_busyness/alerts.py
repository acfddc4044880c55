"""Alerts: a message to an SNS topic and/or a Slack-compatible webhook when a person is needed.

``EVENTS`` lists every event an alert may carry, with its default severity; adding one is one
line there. ``hooks.AlertHook`` raises the run's own: monitoring recommends retraining, the
quality gate fails, a deployment rolls back, a run fails (``alerts_from_outputs``,
``failure_alert``). Other code (the retraining job) builds an ``Alert`` and calls
``send_alert``.

Configuration is the ``alerts`` parameters block (``conf/base/parameters_alerts.yml``), off by
default. The webhook URL is a secret: it lives in credentials.yml, under the key the parameters
name. SNS uses the usual AWS credential chain, or a credentials.yml entry. A delivery that fails
is logged as a warning naming the channel (never the webhook URL) and never fails the run.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from kedro.config import MissingConfigException

from geo_busyness.redaction import redact

logger = logging.getLogger(__name__)

#: Every event an alert may carry -> its default severity. Adding an event is one line here.
EVENTS: dict[str, str] = {
    "retrain_recommended": "warning",
    "gate_failed": "warning",
    "deployment_rolled_back": "critical",
    "pipeline_failed": "critical",
    "retraining_failed": "critical",
    "challenger_promoted": "info",
    "challenger_rejected": "info",
}
SEVERITIES = ("info", "warning", "critical")
#: Slack emoji per severity (the header of a webhook message).
_ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
#: Context keys in the order messages show them.
CONTEXT_KEYS = ("env", "pipelines", "node", "run_id", "mlflow_run_id")
#: SNS limits: a subject is ASCII, one line, at most 100 characters; a message at most 256 KiB.
_SNS_SUBJECT_MAX = 100
_SNS_MESSAGE_MAX = 256 * 1024 - 1024
#: Slack block limits (header text, section text, number of fields per section).
_HEADER_MAX, _SECTION_MAX, _FIELDS_MAX = 150, 3000, 10
_ERROR_MAX = 1000


def _now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(value: Any) -> str:
    """A detail value as one short line of text."""
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def _slack_escape(text: str) -> str:
    """Text made literal for Slack's mrkdwn (it treats &, < and > as markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------ the message
@dataclass(frozen=True)
class Alert:
    """One alert: what happened (``event``), how bad, a one-line summary, the details
    (``reasons`` shown as a list) and where it happened (``context``: project, env,
    pipelines, node, run ids)."""

    event: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    severity: str | None = None
    created_at: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"Unknown alert event {self.event!r}; known: {', '.join(EVENTS)}")
        severity = self.severity or EVENTS[self.event]
        if severity not in SEVERITIES:
            raise ValueError(f"Unknown severity {severity!r}; known: {', '.join(SEVERITIES)}")
        object.__setattr__(self, "severity", severity)

    @property
    def project(self) -> str:
        """The project the alert is about (``context["project"]``)."""
        return str(self.context.get("project") or "geo-busyness")

    @property
    def reasons(self) -> list[str]:
        """``details["reasons"]`` as a list of strings."""
        reasons = self.details.get("reasons") or []
        return [str(reasons)] if isinstance(reasons, str) else [str(item) for item in reasons]

    def with_context(self, **defaults: Any) -> Alert:
        """A copy whose context has ``defaults`` where it lacks them."""
        return replace(self, context={**defaults, **self.context})

    def detail_lines(self) -> list[str]:
        """``key: value`` for every detail but the reasons (None left out)."""
        return [
            f"{key}: {_show(value)}"
            for key, value in self.details.items()
            if key != "reasons" and value is not None
        ]

    def context_line(self) -> str:
        """Where it happened, e.g. ``env local | pipelines modeling | node gate_and_register``."""
        parts = [
            f"{key} {_show(self.context[key])}"
            for key in CONTEXT_KEYS
            if self.context.get(key) not in (None, "", [], ())
        ]
        return " | ".join(parts)

    def text(self) -> str:
        """The plain-text message: headline, reasons, details, context."""
        lines = [f"[{self.project}] {self.severity.upper()} {self.event}: {self.summary}"]
        lines += [f"- {reason}" for reason in self.reasons]
        lines += self.detail_lines()
        if where := self.context_line():
            lines.append(where)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the alert (what SNS subscribers receive, plus ``text``)."""
        data = json.loads(json.dumps(asdict(self), default=str))
        return {**data, "project": self.project, "text": self.text()}

    def slack_payload(self) -> dict[str, Any]:
        """A Slack-compatible webhook body: ``text`` (the whole message, the fallback of
        notifications) and ``blocks``; &, < and > escaped as Slack wants."""
        icon = _ICONS[self.severity]
        body = _slack_escape(self.summary)
        if self.reasons:
            body += "\n" + "\n".join(f"• {_slack_escape(reason)}" for reason in self.reasons)
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _clip(f"{icon} {self.event} ({self.project})", _HEADER_MAX),
                    "emoji": True,
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, _SECTION_MAX)}},
        ]
        facts = [line.split(": ", 1) for line in self.detail_lines()][:_FIELDS_MAX]
        if facts:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {
                            "type": "mrkdwn",
                            "text": _clip(f"*{key}*\n{_slack_escape(value)}", 2000),
                        }
                        for key, value in facts
                    ],
                }
            )
        where = self.context_line()
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _clip(
                            f"{self.severity} | {_slack_escape(where) or self.project}"
                            f" | {self.created_at}",
                            _SECTION_MAX,
                        ),
                    }
                ],
            }
        )
        return {"text": _clip(_slack_escape(self.text()), _SECTION_MAX), "blocks": blocks}

    def sns_subject(self) -> str:
        """The SNS subject: one ASCII line of at most 100 characters."""
        subject = f"[{self.project}] {self.event}: {self.summary}"
        ascii_line = " ".join(subject.encode("ascii", "replace").decode().split())
        return _clip(ascii_line, _SNS_SUBJECT_MAX - 3).replace("…", "...")

    def sns_message(self) -> str:
        """The SNS message: the alert as indented JSON (details dropped if over SNS's limit)."""
        message = json.dumps(self.to_dict(), indent=2)
        if len(message.encode()) > _SNS_MESSAGE_MAX:
            trimmed = replace(self, details={"note": "details too large for SNS; see the run"})
            message = json.dumps(trimmed.to_dict(), indent=2)
        return message

    def sns_attributes(self) -> dict[str, dict[str, str]]:
        """Message attributes subscribers can filter on: event, severity, project."""
        values = {"event": self.event, "severity": self.severity, "project": self.project}
        return {key: {"DataType": "String", "StringValue": value} for key, value in values.items()}


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


# ------------------------------------------------------------------------------ the run's events
#: Node outputs whose values may say a deployment rolled back (deployment pipeline).
ROLLBACK_OUTPUTS = ("deployment_outcome", "deployment_record")


def retrain_alert(
    verdict: Any, report: Any = None, context: Mapping[str, Any] | None = None
) -> Alert | None:
    """``retrain_recommended`` when monitoring's verdict says so, with the fired reasons."""
    verdict_map = verdict if isinstance(verdict, Mapping) else {}
    recommended = verdict_map.get("retrain_recommended") if verdict_map else verdict
    if recommended is not True:
        return None
    report = report if isinstance(report, Mapping) else {}
    reasons = list(report.get("reasons") or verdict_map.get("reasons") or [])
    model = report.get("model") if isinstance(report.get("model"), Mapping) else {}
    name = verdict_map.get("model_name") or model.get("model_name")
    version = verdict_map.get("model_version") or model.get("version")
    subject = f"{name} version {version}" if name else "the monitored model"
    return Alert(
        "retrain_recommended",
        f"Retraining recommended for {subject}: {len(reasons)} check(s) fired",
        {"reasons": reasons, "model_name": name, "model_version": version},
        context or {},
    )


def gate_alert(report: Any, context: Mapping[str, Any] | None = None) -> Alert | None:
    """``gate_failed`` when an evaluation report's quality gate did not pass, with its reasons."""
    gate = report.get("gate") if isinstance(report, Mapping) else None
    if not isinstance(gate, Mapping) or gate.get("passed") is not False:
        return None
    reasons = list(gate.get("reasons") or [])
    test = report.get("test") if isinstance(report.get("test"), Mapping) else {}
    model = test.get("model") if isinstance(test.get("model"), Mapping) else {}
    registration = report.get("registration")
    registration = registration if isinstance(registration, Mapping) else {}
    return Alert(
        "gate_failed",
        f"Quality gate failed, nothing registered: {len(reasons)} reason(s)",
        {
            "reasons": reasons,
            "min_r2": gate.get("min_r2"),
            "test_r2": model.get("r2"),
            "test_mae": model.get("mae"),
            "training_run_id": registration.get("run_id"),
        },
        context or {},
    )


def rolled_back(outcome: Any) -> bool:
    """True when a deployment outcome says it rolled back (``rolled_back: true`` or
    ``status: rolled_back``), itself or in its nested ``deployment``."""
    if not isinstance(outcome, Mapping):
        return False
    if outcome.get("rolled_back") is True or outcome.get("status") == "rolled_back":
        return True
    return rolled_back(outcome.get("deployment"))


def rollback_alert(outcome: Any, context: Mapping[str, Any] | None = None) -> Alert | None:
    """``deployment_rolled_back`` from a deployment outcome or record that says it rolled back."""
    if not rolled_back(outcome):
        return None
    nested = outcome.get("deployment") if isinstance(outcome.get("deployment"), Mapping) else {}
    facts = {**nested, **outcome}
    model = facts.get("model_name")
    version = facts.get("model_version") or facts.get("version")
    what = f"{model} version {version}" if model else "the new model"
    endpoint = facts.get("endpoint_name") or facts.get("endpoint")
    where = f" on {endpoint}" if endpoint else ""
    details = {
        "reasons": [str(facts["reason"])] if facts.get("reason") else [],
        "target": facts.get("target"),
        "endpoint": endpoint,
        "serving": facts.get("previous_endpoint_config") or facts.get("serving"),
    }
    return Alert(
        "deployment_rolled_back",
        f"Deployment of {what}{where} rolled back",
        details,
        context or {},
    )


def alerts_from_outputs(
    outputs: Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> list[Alert]:
    """The alerts a node's outputs call for: retraining recommended (``retrain_recommended``,
    reasons from ``monitoring_report``), a failed gate (``evaluation_report``), a rollback
    (``ROLLBACK_OUTPUTS``)."""
    found = []
    if "retrain_recommended" in outputs:
        found.append(
            retrain_alert(outputs["retrain_recommended"], outputs.get("monitoring_report"), context)
        )
    if "evaluation_report" in outputs:
        found.append(gate_alert(outputs["evaluation_report"], context))
    found += [
        rollback_alert(outputs[name], context) for name in ROLLBACK_OUTPUTS if name in outputs
    ]
    return [alert for alert in found if alert is not None]


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def failure_alert(
    error: BaseException, node: str | None = None, context: Mapping[str, Any] | None = None
) -> Alert:
    """The alert for a failed run: ``deployment_rolled_back`` when the deployment's
    ``DeploymentError`` says the endpoint rolled back, else ``pipeline_failed``."""
    context = {**(context or {}), **({"node": node} if node else {})}
    for link in _causes(error):
        if type(link).__name__ == "DeploymentError" and "rolled back" in str(link).lower():
            return Alert(
                "deployment_rolled_back",
                "Deployment failed and rolled back",
                {"reasons": [_clip(redact(link), _ERROR_MAX)]},
                context,
            )
    message = _clip(redact(error), _ERROR_MAX)
    where = f" in node {node}" if node else ""
    return Alert(
        "pipeline_failed",
        _clip(f"Run failed{where}: {type(error).__name__}", _HEADER_MAX),
        {"error_type": type(error).__name__, "error": message},
        context,
    )
