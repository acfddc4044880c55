"""Regression metrics shared by evaluation (modeling) and performance monitoring."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    mean_absolute_error,
    mean_poisson_deviance,
    r2_score,
    root_mean_squared_error,
)

#: Metrics where lower is better (the rest, R², higher is better).
LOWER_IS_BETTER = ("mae", "rmse", "mean_poisson_deviance")


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R², MAE, RMSE and mean Poisson deviance (predictions clipped to >= 1e-6 for the latter)."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    return {
        "r2": float(r2_score(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mean_poisson_deviance": float(
            mean_poisson_deviance(actual, np.clip(predicted, 1e-6, None))
        ),
    }
