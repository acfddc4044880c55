"""From the comparisons to a verdict: every check that fired becomes a reason to retrain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: Labels of the cell-hour distributions in reasons and metric names.
_CELL_HOUR_LABELS = {"busyness": "cell-hour busyness", "predictions": "prediction"}


def _cmp(fired: bool) -> str:
    """The comparison a reason states: above the threshold, or within it."""
    return ">" if fired else "<="


def feature_checks(event_drift: dict[str, Any]) -> list[dict[str, Any]]:
    """One check per event feature (PSI; KS D for numeric ones) and one for unseen cells."""
    checks = []
    for name, result in event_drift.items():
        if name == "unseen_cells" or "skipped" in result:
            continue
        checks.append(_effect_size_check("feature_drift", name, name, result))
    unseen = event_drift["unseen_cells"]
    checks.append(
        {
            "check": "unseen_cells",
            "name": "unseen_cell_event_share",
            "figure": unseen["recent_event_share"],
            "threshold": unseen["threshold"],
            "fired": unseen["drifted"],
            "reason": (
                f"unseen cells: {unseen['recent_event_share']:.1%} of recent events in cells"
                f" unseen in training ({_cmp(unseen['drifted'])} {unseen['threshold']:.1%})"
            ),
        }
    )
    return checks


def _effect_size_check(check: str, name: str, label: str, result: dict[str, Any]) -> dict:
    """A check on PSI (and KS D when it has a threshold), naming what fired."""
    psi, psi_limit = result["psi"], result["psi_threshold"]
    ks, ks_limit = result.get("ks_d"), result.get("ks_d_threshold")
    parts = []
    if psi > psi_limit:
        parts.append(f"PSI {psi:.3f} > {psi_limit:.2f}")
    if ks is not None and ks_limit is not None and ks > ks_limit:
        parts.append(f"KS D {ks:.3f} > {ks_limit:.2f}")
    figures = f"PSI {psi:.3f}" + (f", KS D {ks:.3f}" if ks is not None else "")
    return {
        "check": check,
        "name": name,
        "figure": psi,
        "threshold": psi_limit,
        "fired": bool(result["drifted"]),
        "reason": f"{label} drift: "
        + ("; ".join(parts) if parts else f"{figures} (within limits)"),
    }


def cell_hour_checks(cell_hour_drift: dict[str, Any]) -> list[dict[str, Any]]:
    """The busyness distribution and prediction drift checks."""
    return [
        _effect_size_check(f"{key}_drift", key, label, cell_hour_drift[key])
        for key, label in _CELL_HOUR_LABELS.items()
    ]


def performance_checks(performance: dict[str, Any]) -> list[dict[str, Any]]:
    """MAE increase and R² drop against the test window."""
    recent, test = performance["recent"], performance["test_window"]
    mae_limit, r2_limit = performance["mae_increase_threshold"], performance["r2_drop_threshold"]
    return [
        {
            "check": "performance",
            "name": "mae_increase",
            "figure": performance["mae_increase"],
            "threshold": mae_limit,
            "fired": bool(performance["mae_increase"] > mae_limit),
            "reason": (
                f"performance: MAE {recent['mae']:.3f} on recent cell-hours vs {test['mae']:.3f}"
                f" in the test window ({performance['mae_increase']:+.1%}"
                f" {_cmp(performance['mae_increase'] > mae_limit)} +{mae_limit:.0%})"
            ),
        },
        {
            "check": "performance",
            "name": "r2_drop",
            "figure": performance["r2_drop"],
            "threshold": r2_limit,
            "fired": bool(performance["r2_drop"] > r2_limit),
            "reason": (
                f"performance: R² {recent['r2']:.3f} on recent cell-hours vs {test['r2']:.3f}"
                f" in the test window (drop {performance['r2_drop']:.3f}"
                f" {_cmp(performance['r2_drop'] > r2_limit)} {r2_limit:.2f})"
            ),
        },
    ]


def level_checks(level: dict[str, Any]) -> list[dict[str, Any]]:
    """The recent level against the model's profile, and the day-ahead bias."""
    total, bias = level["level"], level["bias"]
    change, p_value = total["relative_change"], total["p_value"]
    change_limit, p_limit = total["change_threshold"], total["p_value_threshold"]
    direction = "more" if change >= 0 else "fewer"
    judged = (
        f"|{change:+.0%}| {_cmp(abs(change) > change_limit)} {change_limit:.0%},"
        f" p {'<' if p_value < p_limit else '>='} {p_limit:g}"
    )
    under = "below" if bias["bias"] < 0 else "above"
    return [
        {
            "check": "level",
            "name": "level_change",
            "figure": change,
            "threshold": change_limit,
            "fired": total["fired"],
            "reason": (
                f"level: recent window has {abs(change):.0%} {direction} events than the model"
                f" expected ({total['actual_total']:,.0f} vs {total['expected_total']:,.0f};"
                f" p={p_value:.2g}; {judged})"
            ),
        },
        {
            "check": "bias",
            "name": "prediction_bias",
            "figure": bias["bias"],
            "threshold": bias["threshold"],
            "fired": bias["fired"],
            "reason": (
                f"bias: day-ahead forecasts {abs(bias['bias']):.0%} {under} actuals on recent"
                f" cell-hours (mean {bias['mean_predicted']:.3f} vs {bias['mean_actual']:.3f};"
                f" |{bias['bias']:+.0%}| {_cmp(bias['fired'])} {bias['threshold']:.0%})"
            ),
        },
    ]


def quality_checks(data_quality: dict[str, Any]) -> list[dict[str, Any]]:
    """One check per reject reason: the increase of its share, in percentage points."""
    return [
        {
            "check": "data_quality",
            "name": reason,
            "figure": shares["increase_pp"],
            "threshold": shares["threshold_pp"],
            "fired": shares["drifted"],
            "reason": (
                f"reject share {reason} {shares['recent_share']:.1%} vs"
                f" {shares['reference_share']:.1%} in reference"
                f" ({shares['increase_pp']:+.1f} pp {_cmp(shares['drifted'])}"
                f" {shares['threshold_pp']:.1f} pp)"
            ),
        }
        for reason, shares in data_quality["by_reason"].items()
    ]


def assemble_report(
    model_version: dict[str, Any],
    event_drift: dict[str, Any],
    cell_hour_drift: dict[str, Any],
    *,
    performance: dict[str, Any],
    level: dict[str, Any],
    data_quality: dict[str, Any],
    params: dict[str, Any],
    parameter_mismatch: list[dict[str, Any]] | None = None,
    recent_window: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, float]]]:
    """The monitoring report, the retraining verdict with its reasons, and MLflow metrics.

    ``level`` is ``level.compare_level``'s output (the level and bias checks).
    ``parameter_mismatch`` (``registry.check_model_parameters``) lists where the model's own
    parameters differ from the run's; the report records it as ``model_parameter_mismatch``.
    ``recent_window`` (``recent_window.choose_recent_batch``) says which events were judged:
    the separate recent batch, or the newest week of ``clean_events``.
    """
    checks = [
        *feature_checks(event_drift),
        *cell_hour_checks(cell_hour_drift),
        *performance_checks(performance),
        *level_checks(level),
        *quality_checks(data_quality),
    ]
    reasons = [check["reason"] for check in checks if check["fired"]]
    model = {key: model_version[key] for key in ("model_name", "version", "chosen_by", "run_id")}
    model["tags"] = model_version["tags"]
    verdict = {
        "retrain_recommended": bool(reasons),
        "reasons": reasons,
        "model_name": model_version["model_name"],
        "model_version": model_version["version"],
    }
    report = {
        "generated_at_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model,
        "model_parameter_mismatch": list(parameter_mismatch or []),
        "reference_window": {
            "start": model_version["tags"]["window_train_start"],
            "end": model_version["tags"]["window_train_end"],
        },
        "recent_window": dict(recent_window or {"source": "recent_raw_events"}),
        "thresholds": params["thresholds"],
        "retrain_recommended": verdict["retrain_recommended"],
        "reasons": reasons,
        "checks": checks,
        "event_features": event_drift,
        "cell_hours": cell_hour_drift,
        "performance": performance,
        "level": level["level"],
        "bias": level["bias"],
        "data_quality": data_quality,
    }
    return report, verdict, monitoring_metrics(checks, event_drift, performance, level)


def monitoring_metrics(
    checks: list[dict[str, Any]],
    event_drift: dict[str, Any],
    performance: dict[str, Any],
    level: dict[str, Any],
) -> dict[str, dict[str, float]]:
    """The figures as MLflow metrics ({"value": x, "step": 0})."""
    values = {f"{check['check']}.{check['name']}": check["figure"] for check in checks}
    values |= {
        f"feature_drift.{name}.ks_d": result["ks_d"]
        for name, result in event_drift.items()
        if "ks_d" in result
    }
    values |= {f"performance.recent_{key}": value for key, value in performance["recent"].items()}
    values |= {
        f"level.{key}": level["level"][key]
        for key in ("p_value", "z", "actual_total", "expected_total", "served_forecast_change")
    }
    values["checks_fired"] = sum(check["fired"] for check in checks)
    values["retrain_recommended"] = float(any(check["fired"] for check in checks))
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}
