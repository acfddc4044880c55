"""The few lines a run ends with: what was decided, how good it is, where to look next.

Pure functions over the runs' JSON reports (``evaluation_report``, ``inference_report``,
``monitoring_report``), tolerant of missing keys: the report formats change with the model,
and a summary that raised would hide the run's own outcome. ``hooks.RunSummaryHook`` prints
them after a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_busyness.quality_gate import champion_kept

#: Where to look after any training run.
LOOK_COMMANDS = (
    ("lineage (kedro-viz)", "make viz  (or: uv run kedro viz run)"),
    ("experiments (MLflow UI)", "uv run kedro mlflow ui"),
)
#: What to run next after a training run that registered a model that passed the gate;
#: `kedro serve` serves the champion, set by deployment.
NEXT_COMMANDS = (
    *LOOK_COMMANDS,
    ("serve", "uv run kedro run --pipelines deployment && uv run kedro serve"),
)
#: ... after a challenger that did not beat the champion: the champion serves as it did.
CHAMPION_KEPT_COMMANDS = (*LOOK_COMMANDS, ("serve the champion", "uv run kedro serve"))
#: ... after a failed gate: nothing new to deploy; why is in the reasons and the reports.
GATE_FAILED_COMMANDS = (
    *LOOK_COMMANDS,
    ("history needed", "docs/new_source.md (how much history each model needs)"),
    (
        "try it anyway",
        "uv run kedro run --params modeling.register_rejected=true  (deployment refuses it)",
    ),
)
#: ... after a model registered despite a failed gate: inference and monitoring take it,
#: deployment does not.
OVERRIDE_COMMANDS = (
    *LOOK_COMMANDS,
    ("forecast and monitor", "uv run kedro run --pipelines inference,monitoring"),
)
_RULE = "-" * 72
#: monitoring's ``recent_window.NEWEST_WEEK`` (not imported: this module reads reports only).
NEWEST_WEEK = "newest_week_of_clean_events"
NEWEST_INGESTED = "newest_ingested_batch"  # both as pipelines/monitoring/recent_window.py


def _number(value: Any) -> str:
    """A metric as text: 4 significant digits for floats, as is for anything else."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple)


def metric_lines(metrics: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """One line per metric group (``name: r2 0.91, mae 2.9``), nested groups indented.

    A group whose values are all scalars fits one line; deeper groups (e.g. per horizon
    bucket) get a heading and their own lines.
    """
    lines: list[str] = []
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            if value and all(_is_scalar(item) for item in value.values()):
                figures = ", ".join(f"{key} {_number(item)}" for key, item in value.items())
                lines.append(f"{indent}{name}: {figures}")
            elif value:
                lines.append(f"{indent}{name}:")
                lines.extend(metric_lines(value, indent + "  "))
        elif _is_scalar(value):
            lines.append(f"{indent}{name}: {_number(value)}")
    return lines


def _gate_lines(gate: Any) -> list[str]:
    """The gate's verdict, its rule and its reasons, whatever of them the report holds."""
    if not isinstance(gate, Mapping):
        return ["Quality gate: not in the report"]
    kept = champion_kept(gate)
    if kept:
        reason = gate["champion_comparison"].get("reason")
        lines = [f"Quality gate: {kept}", *([f"  - {reason}"] if reason else [])]
        return lines + _bucket_lines(gate)
    passed = gate.get("passed")
    verdict = "unknown" if passed is None else ("PASSED" if passed else "FAILED")
    rule = gate.get("rule")
    lines = [f"Quality gate: {verdict}" + (f" ({rule})" if rule else "")]
    lines.extend(f"  - {reason}" for reason in gate.get("reasons") or [])
    return lines + _bucket_lines(gate)


def _bucket_lines(gate: Mapping[str, Any]) -> list[str]:
    """The P50 MAE skill of each product x horizon bucket, with its noise and verdict."""
    lines: list[str] = []
    buckets = [b for b in gate.get("buckets") or [] if isinstance(b, Mapping)]
    if buckets:
        lines.append("  P50 MAE skill over the seasonal naive per bucket (noise = 1 s.e.):")
    lines.extend(
        f"    {b.get('product')} {b.get('bucket')}: {b.get('skill_mae', float('nan')):+.1%}"
        f" (noise {b.get('noise', float('nan')):.1%}, {b.get('rows')} rows) {b.get('verdict')}"
        for b in buckets
    )
    return lines


def _selection_lines(selection: Any) -> list[str]:
    """The chosen forecaster, the folds it was chosen on and every candidate's loss."""
    if not isinstance(selection, Mapping) or "chosen" not in selection:
        return []
    losses = selection.get("validation_average") or {}
    folds = selection.get("folds") or []
    figures = ", ".join(f"{name} {_number(value)}" for name, value in losses.items())
    lines = [f"Model: {selection['chosen']}, chosen on {len(folds)} validation fold(s)"]
    if figures:
        lines.append(f"  validation loss (1 = seasonal naive, lower is better): {figures}")
    return lines


def _registration_lines(registration: Any) -> list[str]:
    """The registered version and alias, or why nothing was registered."""
    if not isinstance(registration, Mapping):
        return []
    run_id = registration.get("run_id")
    run = f" (MLflow run {run_id})" if run_id else ""
    if not registration.get("registered"):
        return [f"Registered: nothing{run}"]
    name = registration.get("model_name", "?")
    version = registration.get("version", "?")
    alias = registration.get("alias")
    alias_text = f", alias @{alias}" if alias else ""
    lines = [f"Registered: {name} version {version}{alias_text}{run}"]
    if registration.get("override"):
        lines.append(
            "  despite the failed gate (modeling.register_rejected): for exploring only,"
            " deployment refuses it"
        )
    if registration.get("model_uri"):
        lines.append(f"  model URI: {registration['model_uri']}")
    return lines


def run_summary(report: Mapping[str, Any], *, reports_at: str | None = None) -> str:
    """The end-of-run summary of a training run's evaluation report.

    The gate's verdict, the test metrics of the model and the baselines (every group the
    report's ``test`` section holds), the registered version and alias, where the reports are
    (``reports_at``) and the commands to look further. Missing keys are left out.
    """
    lines = [_RULE, "Training run summary", *_gate_lines(report.get("gate"))]
    lines += _selection_lines(report.get("model_selection"))
    test = report.get("test")
    if isinstance(test, Mapping) and test:
        lines += ["Test window metrics:", *metric_lines(test)]
    lines += _registration_lines(report.get("registration"))
    if reports_at:
        lines.append(f"Reports: {reports_at}")
    lines.append("Next:")
    lines.extend(f"  {what:<24} {command}" for what, command in next_commands(report))
    lines.append(_RULE)
    return "\n".join(lines)


def next_commands(report: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What to run next, by the run's outcome: deploy and serve a model that passed the gate;
    serve the champion that a challenger did not beat; after a failed gate, how much history
    is needed or the override; after the override, inference and monitoring (not deployment).
    A report without a verdict gets the commands of a passed gate."""
    gate = report.get("gate") if isinstance(report.get("gate"), Mapping) else {}
    registration = report.get("registration")
    registration = registration if isinstance(registration, Mapping) else {}
    if champion_kept(gate):
        return CHAMPION_KEPT_COMMANDS
    if gate.get("passed") is False:
        return OVERRIDE_COMMANDS if registration.get("registered") else GATE_FAILED_COMMANDS
    return NEXT_COMMANDS


def _scalars(values: Mapping[str, Any]) -> str:
    """The scalar entries of a mapping on one line (``key value, ...``); nested ones left out."""
    return ", ".join(f"{key} {_number(item)}" for key, item in values.items() if _is_scalar(item))


def inference_summary(report: Mapping[str, Any], *, reports_at: str | None = None) -> str:
    """A short summary of a batch inference report: the model, the forecast, the query rows."""
    lines = [_RULE, "Inference run summary"]
    for section in ("model", "forecast", "queries"):
        values = report.get(section)
        if isinstance(values, Mapping) and _scalars(values):
            lines.append(f"{section}: {_scalars(values)}")
    if reports_at:
        lines.append(f"Reports: {reports_at}")
    lines.append(_RULE)
    return "\n".join(lines)


def monitoring_summary(report: Mapping[str, Any], *, reports_at: str | None = None) -> str:
    """A short summary of a monitoring report: the model watched, retrain or not, and why."""
    lines = [_RULE, "Monitoring run summary"]
    model = report.get("model")
    if isinstance(model, Mapping) and _scalars(model):
        lines.append(f"model: {_scalars(model)}")
    window = report.get("recent_window")
    if isinstance(window, Mapping) and window.get("source") == NEWEST_WEEK:
        lines.append(
            f"Judged: the newest week of clean_events, {window.get('start_utc')} .."
            f" {window.get('end_utc')} ({window.get('rows')} events), since"
            f" {window.get('why', 'there is no separate recent batch')}"
        )
    elif isinstance(window, Mapping) and window.get("source") == NEWEST_INGESTED:
        lines.append(
            f"Judged: the newest ingested batch {window.get('batch')}, {window.get('start_utc')}"
            f" .. {window.get('end_utc')} ({window.get('rows')} events)"
        )
    retrain = report.get("retrain_recommended")
    if retrain is not None:
        lines.append(f"Retrain recommended: {'YES' if retrain else 'no'}")
    lines.extend(f"  - {reason}" for reason in report.get("reasons") or [])
    if reports_at:
        lines.append(f"Reports: {reports_at}")
    lines.append(_RULE)
    return "\n".join(lines)


def _version(version: Any) -> str:
    """``v3``, or ``none`` when no version (never ``vNone``)."""
    return f"v{version}" if version not in (None, "") else "none"


def retraining_summary(record: Mapping[str, Any]) -> str:
    """A few lines on what a retraining job did: its outcome, the champion before and after
    (``none`` when there was none), and each step."""
    before, after = _version(record.get("champion_before")), _version(record.get("champion_after"))
    lines = [f"Retraining: {record.get('status', '?')} (champion {before} -> {after})"]
    lines += [
        f"  {step.get('step')}: {step.get('status')} - {step.get('detail')}"
        for step in record.get("steps") or []
    ]
    return "\n".join(lines)
