"""A small evaluation report as the modeling pipeline writes it (the keys the reports read)."""

from __future__ import annotations

import copy

WINDOWS = {
    "train_start": "2026-01-05T06:00:00+00:00",
    "train_end": "2026-02-09T06:00:00+00:00",
    "validation_start": "2026-02-09T06:00:00+00:00",
    "validation_end": "2026-02-16T06:00:00+00:00",
    "test_start": "2026-02-16T06:00:00+00:00",
    "test_end": "2026-03-02T06:00:00+00:00",
}


def _metrics(r2: float, mae: float, rmse: float) -> dict[str, float]:
    return {"r2": r2, "mae": mae, "rmse": rmse, "mean_poisson_deviance": 1.0}


REPORT = {
    "time_windows": WINDOWS,
    "model_selection": {"chosen": "gradient_boosting"},
    "test": {
        "headline_product": "day_ahead",
        "rows": 10416,
        "model": _metrics(0.7365, 0.7197, 1.3510),
        "seasonal_naive_baseline": _metrics(0.7273, 0.7234, 1.3745),
        "level_adjusted_baseline": _metrics(0.7290, 0.7251, 1.3702),
        "recent_level_baseline": _metrics(0.7301, 0.7212, 1.3690),
    },
    "gate": {"passed": True, "reasons": [], "baseline_gate_passed": True},
    "registration": {"registered": True, "version": "4", "model_name": "geo-busyness"},
}


def report(**changes: dict) -> dict:
    """A deep copy of ``REPORT`` with top-level keys replaced."""
    return copy.deepcopy(REPORT) | changes
