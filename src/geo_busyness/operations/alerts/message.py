"""The alert itself: its event, severity, summary, details and context, and how it reads as
text, as a Slack message and as an SNS message."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

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
    "serving_swap_refused": "critical",
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
        """A Slack-compatible webhook body: ``text`` (the whole message as plain text: the
        fallback of Slack's notifications, what other receivers show) and ``blocks`` (Slack's
        mrkdwn, &, < and > escaped as Slack wants)."""
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
        # ``text`` is what webhook receivers other than Slack show (and Slack's notification
        # fallback): plain, so they never show Slack's ``&lt;``; the blocks are Slack's own.
        return {"text": _clip(self.text(), _SECTION_MAX), "blocks": blocks}

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
