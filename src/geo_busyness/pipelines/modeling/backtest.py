"""Rolling-origin backtest: every forecaster scored on the same cells x hours, per product and
horizon bucket.

Products: the nowcast (an origin every hour, 1-3 h ahead), day-ahead (an origin at each local
midnight, 1-24 h ahead) and week-ahead (each local midnight, 1-168 h ahead), with every target
hour inside the window. Like is scored with like: the mean by RMSE, R^2 and Poisson deviance,
the median (P50) by MAE against each baseline's own median (a Poisson median of its mean).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from geo_busyness.metrics import regression_metrics
from geo_busyness.model.cell_hours import HOURS_PER_WEEK
from geo_busyness.model.forecaster import (
    HORIZON_BUCKETS,
    BusynessForecaster,
    count_quantiles,
    horizon_pairs,
)

#: A mean forecast of (history row, origin position, horizon) rows.
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
#: Rows scored per chunk (bounds the feature matrix's memory).
_CHUNK_ROWS = 400_000


def product_pairs(forecaster: BusynessForecaster, start: int, end: int) -> dict[str, Any]:
    """(origin, horizon) pairs of each product with origins in [start, end), targets < end.

    The nowcast has an origin every hour. Day-ahead and week-ahead origins are the local
    midnights, plus the window's start when it is not one; day-ahead runs to the next origin,
    so its rows hold every hour of the window exactly once.
    """
    hourly = np.arange(max(start, 1), end)
    daily = hourly[(forecaster.derived.calendar["hour"][hourly] == 0) | (hourly == hourly[:1])]
    to_next = np.diff(np.append(daily, end))
    pairs = {"nowcast": horizon_pairs(hourly, np.full(len(hourly), 3), end)}
    pairs["day_ahead"] = horizon_pairs(daily, to_next, end)
    pairs["week_ahead"] = horizon_pairs(daily, np.full(len(daily), HOURS_PER_WEEK), end)
    return pairs


def backtest_means(
    forecasters: dict[str, BusynessForecaster],
    start: int,
    end: int,
    others: dict[str, Predictor] | None = None,
) -> dict[str, pd.DataFrame]:
    """Per product: one row per (cell, origin, horizon) with the actual and each mean forecast.

    Rows, origins and hours are those of the first forecaster's history; ``others`` are more
    columns from predictors taking those positions (e.g. the champion's, in its own positions).
    """
    reference = next(iter(forecasters.values()))
    predictors = {name: f.predict_rows for name, f in forecasters.items()} | (others or {})
    cells = len(reference.history_.cells)
    out = {}
    for product, (origin, horizon) in product_pairs(reference, start, end).items():
        rows = np.repeat(np.arange(cells), len(origin))
        origins, horizons = np.tile(origin, cells), np.tile(horizon, cells)
        table = {
            "row": rows,
            "origin": origins,
            "horizon_hours": horizons,
            "actual": reference.derived.counts[rows, origins + horizons - 1],
        }
        for name, predict in predictors.items():
            table[name] = predict_in_chunks(predict, rows, origins, horizons)
        out[product] = pd.DataFrame(table)
    return out


def predict_in_chunks(
    predict: Predictor, rows: np.ndarray, origins: np.ndarray, horizons: np.ndarray
) -> np.ndarray:
    """``predict`` over chunks of at most ``_CHUNK_ROWS`` rows, clipped at zero."""
    if not len(rows):
        return np.empty(0)
    return np.concatenate(
        [np.clip(predict(rows[s], origins[s], horizons[s]), 0.0, None) for s in _chunks(len(rows))]
    )


def _chunks(n: int) -> list[slice]:
    """Slices of at most ``_CHUNK_ROWS`` covering ``range(n)``."""
    return [slice(i, i + _CHUNK_ROWS) for i in range(0, n, _CHUNK_ROWS)]


def score(
    means: dict[str, pd.DataFrame], sizes: dict[str, float | None], reference: str
) -> list[dict[str, Any]]:
    """Metrics of every forecaster per product and horizon bucket, with skill against ``reference``.

    ``sizes`` gives each forecaster's negative-binomial size (None = Poisson) for its median
    and 80% interval.
    """
    rows = []
    for product, table in means.items():
        for low, high in HORIZON_BUCKETS:
            part = table[(table["horizon_hours"] >= low) & (table["horizon_hours"] <= high)]
            if part.empty:
                continue
            y = part["actual"].to_numpy()
            entry: dict[str, Any] = {
                "product": product,
                "bucket": f"{low}-{high}h",
                "rows": len(part),
            }
            for name, size in sizes.items():
                mean = part[name].to_numpy()
                metrics = regression_metrics(y, mean)
                p10, p50, p90 = (count_quantiles(mean, size, q) for q in (0.1, 0.5, 0.9))
                metrics["mae"] = float(np.mean(np.abs(y - p50)))  # the median's own metric
                metrics["coverage_80"] = float(np.mean((y >= p10) & (y <= p90)))
                metrics["pit_coverage_80"] = pit_coverage(y, mean, size)
                entry[name] = metrics
            for name in sizes:
                if name != reference:
                    entry[name]["skill_mae"] = _skill(entry[name]["mae"], entry[reference]["mae"])
                    entry[name]["skill_rmse"] = _skill(
                        entry[name]["rmse"], entry[reference]["rmse"]
                    )
            rows.append(entry)
    return rows


def pit_coverage(y: np.ndarray, mean: np.ndarray, size: float | None, seed: int = 0) -> float:
    """Share of randomised PIT values in [0.1, 0.9]: the 80% coverage of a count forecast.

    For counts, ``P10 <= y <= P90`` over-covers (a zero is inside every interval that starts at
    0); the randomised probability integral transform is uniform for a calibrated forecast.
    """
    mean = np.maximum(mean, 1e-9)
    if size is None:
        below, at = stats.poisson.cdf(y - 1, mean), stats.poisson.pmf(y, mean)
    else:
        p = size / (size + mean)
        below, at = stats.nbinom.cdf(y - 1, size, p), stats.nbinom.pmf(y, size, p)
    pit = below + np.random.default_rng(seed).uniform(size=len(y)) * at
    return float(np.mean((pit >= 0.1) & (pit <= 0.9)))


def _skill(value: float, reference: float) -> float:
    """1 - value / reference (0 when the reference is perfect)."""
    return float(1.0 - value / reference) if reference > 0 else 0.0


def score_table(scores: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """The scores as a flat table: product, bucket, then <name>_<metric> columns."""
    flat = []
    for entry in scores:
        row = {"product": entry["product"], "bucket": entry["bucket"], "rows": entry["rows"]}
        for name in names:
            row |= {f"{name}_{k}": v for k, v in entry[name].items()}
        flat.append(row)
    return pd.DataFrame(flat)
