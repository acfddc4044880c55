"""The alerts a run calls for, from its node outputs and its failure (``hooks.AlertHook``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from geo_busyness.operations.alerts.message import _ERROR_MAX, _HEADER_MAX, Alert, _clip
from geo_busyness.quality_gate import champion_kept
from geo_busyness.redaction import redact

# ------------------------------------------------------------------------------ who reports
#: The events a retraining job reports itself, from its record: a failed step is its
#: ``retraining_failed``, a challenger that failed a gate its ``challenger_rejected``.
JOB_REPORTED_EVENTS = frozenset({"pipeline_failed", "gate_failed"})
#: How many job steps are running in this process (a job runs its pipelines one at a time).
_job_steps = 0


@contextmanager
def job_reports() -> Iterator[None]:
    """While inside, ``JOB_REPORTED_EVENTS`` are the job's to send: the run's hook stays quiet
    on them (one alert per event)."""
    global _job_steps  # noqa: PLW0603 - process-wide on purpose: the hook has no other channel
    _job_steps += 1
    try:
        yield
    finally:
        _job_steps -= 1


def reported_by_job(event: str) -> bool:
    """True when a retraining job running in this process sends ``event`` itself."""
    return _job_steps > 0 and event in JOB_REPORTED_EVENTS


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
    if not isinstance(gate, Mapping) or gate.get("passed") is not False or champion_kept(gate):
        return None  # the champion keeping its place (a tie included) is no failure
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
