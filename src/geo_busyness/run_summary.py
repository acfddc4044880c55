"""The few lines a run ends with: what was decided, how good it is, where to look next.

Pure functions over the runs' JSON reports (``evaluation_report``, ``inference_report``,
``monitoring_report``), tolerant of missing keys: the report formats change with the model,
and a summary that raised would hide the run's own outcome. ``hooks.RunSummaryHook`` prints
them after a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What to run next after a training run; `kedro serve` serves the champion, set by deployment.
NEXT_COMMANDS = (
    ("lineage (kedro-viz)", "make viz  (or: uv run kedro viz run)"),
    ("experiments (MLflow UI)", "uv run kedro mlflow ui"),
    ("serve", "uv run kedro run --pipelines deployment && uv run kedro serve"),
)
_RULE = "-" * 72


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
    passed = gate.get("passed")
    verdict = "unknown" if passed is None else ("PASSED" if passed else "FAILED")
    rule = gate.get("rule")
    lines = [f"Quality gate: {verdict}" + (f" ({rule})" if rule else "")]
    lines.extend(f"  - {reason}" for reason in gate.get("reasons") or [])
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
    lines.extend(f"  {what:<24} {command}" for what, command in NEXT_COMMANDS)
    lines.append(_RULE)
    return "\n".join(lines)


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
    retrain = report.get("retrain_recommended")
    if retrain is not None:
        lines.append(f"Retrain recommended: {'YES' if retrain else 'no'}")
    lines.extend(f"  - {reason}" for reason in report.get("reasons") or [])
    if reports_at:
        lines.append(f"Reports: {reports_at}")
    lines.append(_RULE)
    return "\n".join(lines)
