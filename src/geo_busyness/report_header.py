"""What every HTML report opens with: the model version, the data window (local dates), the
city's time zone, the gate verdict and the headline metrics, the model beside the best baseline
on the same cells x hours. Outside the pipelines: the reporting pages and the monitoring
report both use it (a pipeline imports no other pipeline's modules).

Pure functions over plain dicts: ``report_context`` reads a training run's evaluation report,
``context_from_tags`` a registered version's tags (the monitoring report), ``header_html`` draws
either as inline HTML and CSS (no script, nothing fetched).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from geo_busyness.quality_gate import champion_kept

#: The headline metrics, in the order shown: (key, label, higher is better).
HEADLINE_METRICS = (("r2", "R²", True), ("mae", "MAE (P50)", False), ("rmse", "RMSE", False))
#: The baselines of the evaluation report's headline (``test.<name>_baseline``).
BASELINE_NAMES = ("seasonal_naive", "level_adjusted", "recent_level")

HEADER_CSS = """
.gb-header{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;
margin:0 0 1rem;padding:.75rem 1rem;border:1px solid #ddd;border-radius:.4rem;background:#fafafa}
.gb-header h1{font-size:1.35rem;margin:0 0 .4rem}
.gb-header dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.3rem 0}
.gb-header dt{font-weight:600}.gb-header dd{margin:0}
.gb-header table{border-collapse:collapse;margin:.4rem 0 0;font-size:.9rem}
.gb-header td,.gb-header th{border:1px solid #ddd;padding:.2rem .6rem;text-align:right}
.gb-header td:first-child,.gb-header th:first-child{text-align:left}
.gb-header th{background:#f0f0f0}.gb-header .better{font-weight:700}
.gb-passed{color:#1b7a3a;font-weight:600}.gb-failed{color:#b3261e;font-weight:600}
.gb-kept{color:#7a5b00;font-weight:600}
"""


def local_dates(start: str, end: str, timezone: str) -> str:
    """``first .. last`` local date of a window whose ``end`` is exclusive (ISO times)."""
    first = pd.Timestamp(start).tz_convert(timezone)
    last = (pd.Timestamp(end) - pd.Timedelta(hours=1)).tz_convert(timezone)
    return f"{first:%Y-%m-%d} .. {last:%Y-%m-%d}"


def data_window(windows: Mapping[str, str], timezone: str) -> str:
    """Train and test windows as local dates (both ends included)."""
    train = local_dates(windows["train_start"], windows["train_end"], timezone)
    test = local_dates(windows["test_start"], windows["test_end"], timezone)
    return f"train {train}, test {test}"


def best_baseline(test_metrics: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """The baseline with the lowest headline MAE (the gate's P50 metric) and its metrics."""
    present = [name for name in BASELINE_NAMES if f"{name}_baseline" in test_metrics]
    if not present:
        raise ValueError(
            "evaluation_report.test has no baseline metrics: expected one of "
            f"{[f'{name}_baseline' for name in BASELINE_NAMES]}, found {sorted(test_metrics)}"
        )
    name = min(present, key=lambda key: test_metrics[f"{key}_baseline"]["mae"])
    return name, dict(test_metrics[f"{name}_baseline"])


def gate_verdict(gate: Mapping[str, Any], version: str | None) -> dict[str, Any]:
    """The gate's outcome in one line: passed (and registered), champion kept, or failed."""
    if gate.get("passed"):
        registered = f": registered as version {version}" if version else ""
        return {"status": "passed", "text": f"passed{registered}"}
    kept = champion_kept(dict(gate))
    if kept:
        return {"status": "kept", "text": kept}
    reasons = "; ".join(gate.get("reasons") or []) or "no reason recorded"
    return {"status": "failed", "text": f"failed, nothing registered: {reasons}"}


def report_context(
    evaluation_report: Mapping[str, Any], windows: Mapping[str, str], timezone: str
) -> dict[str, Any]:
    """The header of a training run's reports, from its evaluation report."""
    for key in ("test", "gate", "model_selection"):
        if key not in evaluation_report:
            raise ValueError(
                f"evaluation_report lacks '{key}': expected the modeling pipeline's report"
                f" (keys found: {sorted(evaluation_report)})"
            )
    registration = evaluation_report.get("registration") or {}
    version = str(registration["version"]) if registration.get("registered") else None
    test = evaluation_report["test"]
    method = evaluation_report["model_selection"].get("chosen", "?")
    baseline, baseline_metrics = best_baseline(test)
    return {
        "model": f"version {version} ({method})" if version else f"not registered ({method})",
        "version": version,
        "data_window": data_window(windows, timezone),
        "timezone": timezone,
        "gate": gate_verdict(evaluation_report["gate"], version),
        "metrics": {
            "scope": (
                f"test window, {test.get('headline_product', 'day_ahead')} forecasts,"
                f" {int(test.get('rows', 0)):,} cell-hours, the same for both"
            ),
            "rows": [
                {"name": f"model ({method})", **_picked(test["model"])},
                {
                    "name": f"best baseline ({baseline.replace('_', ' ')})",
                    **_picked(baseline_metrics),
                },
            ],
        },
    }


def context_from_tags(
    model_name: str, version: str, tags: Mapping[str, str], timezone: str
) -> dict[str, Any]:
    """The header of a registered version's reports (monitoring), from its MLflow tags: its
    test-window metrics beside the seasonal-naive baseline's (the tags keep only that one)."""
    windows = {key: tags.get(f"window_{key}") for key in _WINDOW_KEYS}
    missing = [f"window_{key}" for key, value in windows.items() if value is None]
    if missing:
        raise ValueError(
            f"Model {model_name} version {version} lacks tags {missing}: expected the tags the"
            " modeling pipeline sets at registration"
        )
    gate = tags.get("gate", "unknown")
    return {
        "model": f"{model_name} version {version} ({tags.get('model_type', '?')})",
        "version": str(version),
        "data_window": data_window(windows, timezone),
        "timezone": timezone,
        "gate": {
            "status": "passed" if gate == "passed" else "failed",
            "text": gate if gate != "passed" else "passed at registration",
        },
        "metrics": {
            "scope": "test window at registration, day_ahead forecasts, the same cell-hours",
            "rows": [
                {"name": "model", **_picked(_tag_metrics(tags, "test_"))},
                {"name": "seasonal-naive baseline", **_picked(_tag_metrics(tags, "baseline_"))},
            ],
        },
    }


_WINDOW_KEYS = ("train_start", "train_end", "test_start", "test_end")


def _tag_metrics(tags: Mapping[str, str], prefix: str) -> dict[str, float]:
    return {
        key: float(tags[f"{prefix}{key}"])
        for key, _, _ in HEADLINE_METRICS
        if f"{prefix}{key}" in tags
    }


def _picked(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        key: (float(metrics[key]) if key in metrics else None) for key, _, _ in HEADLINE_METRICS
    }


def caption(context: Mapping[str, Any]) -> str:
    """The one line every figure title carries: model, data window and time zone."""
    return f"model {context['model']}; {context['data_window']} ({context['timezone']})"


def header_html(
    context: Mapping[str, Any], title: str, zone_note: str = "every time on this page"
) -> str:
    """The header block: a title, then model, data window, time zone (``zone_note`` says what
    is in it), gate, metrics."""
    gate = context["gate"]
    rows = context["metrics"]["rows"]
    return (
        f'<header class="gb-header"><h1>{_esc(title)}</h1><dl>'
        f"<dt>Model</dt><dd>{_esc(context['model'])}</dd>"
        f"<dt>Data window</dt><dd>{_esc(context['data_window'])} (local dates)</dd>"
        f"<dt>Time zone</dt><dd>{_esc(context['timezone'])}: {_esc(zone_note)}</dd>"
        f'<dt>Quality gate</dt><dd class="gb-{_esc(gate["status"])}">{_esc(gate["text"])}</dd>'
        f"<dt>Headline metrics</dt><dd>{_esc(context['metrics']['scope'])}"
        f"{_metrics_table(rows)}</dd></dl></header>"
    )


def _metrics_table(rows: list[Mapping[str, Any]]) -> str:
    """Model and baseline, one row each; the better figure of each metric in bold."""
    head = "".join(f"<th>{label}</th>" for _, label, _ in HEADLINE_METRICS)
    best = {}
    for key, _, higher in HEADLINE_METRICS:
        values = [row[key] for row in rows if row[key] is not None]
        best[key] = (max(values) if higher else min(values)) if len(values) > 1 else None
    body = "".join(
        f"<tr><td>{_esc(row['name'])}</td>"
        + "".join(_metric_cell(row[key], best[key]) for key, _, _ in HEADLINE_METRICS)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _metric_cell(value: float | None, best: float | None) -> str:
    if value is None:
        return "<td>n/a</td>"
    mark = ' class="better"' if best is not None and value == best else ""
    return f"<td{mark}>{value:.3f}</td>"


def _esc(value: Any) -> str:
    return html.escape(str(value))
