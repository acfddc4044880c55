"""Rolling-origin backtest: every forecaster scored on the same cells x hours, per product and
horizon bucket.

Products: the nowcast (an origin every hour, 1-3 h ahead), day-ahead (an origin at each local
midnight, the local day ahead: 23-25 h at the clock changes) and week-ahead (each local midnight, 1-168 h ahead), with every target
hour inside the window. Like is scored with like: the mean by RMSE, R^2 and Poisson deviance,
the median (P50) by MAE against each baseline's own median (a Poisson median of its mean).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.metrics import root_mean_squared_error

from geo_busyness.metrics import regression_metrics
from geo_busyness.model.cell_hours import HOURS_PER_WEEK
from geo_busyness.model.distribution import pit_coverage
from geo_busyness.model.forecaster import (
    HORIZON_BUCKETS,
    BusynessForecaster,
    bucket_index,
    horizon_pairs,
)
from geo_busyness.schemas import HORIZON

#: A mean forecast of (history row, origin position, horizon) rows.
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class Distribution(Protocol):
    """What scoring reads of a forecaster besides its means (``BusynessForecaster`` has both)."""

    def quantiles(
        self, mean: np.ndarray, horizon: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def bucket_distribution(self, index: int) -> tuple[float | None, str]: ...


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
    pairs = product_pairs(reference, start, end)
    # The day ahead's (origin, horizon) pairs are the week ahead's first hours: every distinct
    # pair is predicted once (a forecast depends on its cell, origin and horizon alone).
    distinct, which = _distinct_pairs(list(pairs.values()))
    rows = np.repeat(np.arange(cells), len(distinct[0]))
    origins, horizons = np.tile(distinct[0], cells), np.tile(distinct[1], cells)
    predicted = {
        name: predict_in_chunks(predict, rows, origins, horizons)
        for name, predict in predictors.items()
    }
    out = {}
    for (product, (origin, horizon)), index in zip(pairs.items(), which, strict=True):
        rows = np.repeat(np.arange(cells), len(origin))
        origins, horizons = np.tile(origin, cells), np.tile(horizon, cells)
        table = {
            "row": rows,
            "origin": origins,
            "horizon_hours": horizons,
            "day": reference.derived.calendar["date"][origins + horizons - 1],
            "actual": reference.derived.counts[rows, origins + horizons - 1],
        }
        # Row r's pair i sits at r * len(distinct) + index[i] of the predicted columns.
        at = rows * len(distinct[0]) + np.tile(index, cells)
        for name, values in predicted.items():
            table[name] = values[at]
        out[product] = pd.DataFrame(table)
    return out


def _distinct_pairs(
    pairs: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[tuple[np.ndarray, np.ndarray], list[np.ndarray]]:
    """The distinct (origin, horizon) pairs of several lists, and each list's positions in
    them."""
    origin = np.concatenate([o for o, _ in pairs]).astype(np.int64)
    horizon = np.concatenate([h for _, h in pairs]).astype(np.int64)
    span = int(horizon.max(initial=0)) + 1
    keys, inverse = np.unique(origin * span + horizon, return_inverse=True)
    ends = np.cumsum([len(o) for o, _ in pairs])
    return (keys // span, keys % span), np.split(inverse.reshape(-1), ends[:-1])


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


#: Horizon buckets (hours ahead, inclusive) scored per product. The day-ahead product covers
#: the local day: 23-25 hours at the clock changes, so its last bucket runs to 25.
PRODUCT_BUCKETS = {
    "nowcast": ((1, 3),),
    "day_ahead": ((1, 3), (4, 25)),
    "week_ahead": HORIZON_BUCKETS,
}


def bucket_label(product: str, low: int, high: int) -> str:
    """A bucket's name in every table: hours ahead, the day-ahead's local day as 4-24h."""
    return f"{low}-{min(high, 24) if product == 'day_ahead' else high}h"


def score(
    means: dict[str, pd.DataFrame],
    forecasters: dict[str, Distribution],
    reference: str,
    by_fold: dict[Any, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Metrics of every forecaster per product and horizon bucket, with skill against
    ``reference`` and its noise.

    ``forecasters`` give each column's distribution (its ``quantiles`` and per-bucket size):
    the P50 is scored by MAE, the mean by R², RMSE and Poisson deviance, the 80% interval by
    randomised PIT. ``skill_noise`` is the standard error of the MAE skill over the target
    days (paired: both forecasters on the same rows of each day). ``by_fold``, if given, gets
    per value of the tables' ``fold`` column the MAE and RMSE of each forecaster per product
    and bucket (what ``average_loss`` reads), from the same quantiles: a fold scored alone
    would compute them again.
    """
    rows = []
    for product, table in means.items():
        horizon_all = table[HORIZON].to_numpy()
        for low, high in PRODUCT_BUCKETS.get(product, HORIZON_BUCKETS):
            part = (horizon_all >= low) & (horizon_all <= high)
            if not part.any():
                continue
            y = table["actual"].to_numpy()[part]
            horizon = horizon_all[part]
            day = table["day"].to_numpy()[part] if "day" in table else np.zeros(len(y), int)
            entry: dict[str, Any] = {
                "product": product,
                "bucket": bucket_label(product, low, high),
                "rows": int(part.sum()),
                "days": int(len(np.unique(day))),
            }
            errors = {}
            for name, forecaster in forecasters.items():
                mean = table[name].to_numpy()[part]
                metrics = regression_metrics(y, mean)
                p10, p50, p90 = forecaster.quantiles(mean, horizon)
                errors[name] = np.abs(y - p50)
                metrics["mae"] = float(np.mean(errors[name]))  # the median's own metric
                metrics["coverage_80"] = float(np.mean((y >= p10) & (y <= p90)))
                metrics["pit_coverage_80"] = _pit_by_bucket(y, mean, horizon, forecaster)
                entry[name] = metrics
            if by_fold is not None:
                fold = table["fold"].to_numpy()[part]
                means_of = {name: table[name].to_numpy()[part] for name in forecasters}
                for k in pd.unique(fold):
                    rows_k = fold == k
                    by_fold.setdefault(k, []).append(_mae_rmse(y[rows_k], means_of, errors, rows_k))
            for name in forecasters:
                if name != reference:
                    entry[name] |= _skills(entry, name, reference, errors, day)
            rows.append(entry)
    return rows


def _mae_rmse(
    y: np.ndarray,
    means: dict[str, np.ndarray],
    errors: dict[str, np.ndarray],
    rows: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Each forecaster's MAE (its P50's absolute ``errors``) and RMSE (its mean) on ``rows``,
    as ``score`` computes them."""
    actual = np.asarray(y, dtype=float)
    return {
        name: {
            "mae": float(np.mean(errors[name][rows])),
            "rmse": float(root_mean_squared_error(actual, np.asarray(mean[rows], dtype=float))),
        }
        for name, mean in means.items()
    }


def _skills(
    entry: dict[str, Any],
    name: str,
    reference: str,
    errors: dict[str, np.ndarray],
    day: np.ndarray,
) -> dict[str, float]:
    """MAE and RMSE skill against the reference, and the MAE skill's noise over days."""
    reference_mae = entry[reference]["mae"]
    return {
        "skill_mae": skill(entry[name]["mae"], reference_mae),
        "skill_rmse": skill(entry[name]["rmse"], entry[reference]["rmse"]),
        "skill_noise": paired_noise(errors[name] - errors[reference], day) / reference_mae
        if reference_mae > 0
        else 0.0,
        "same_p50": bool(np.array_equal(errors[name], errors[reference])),
    }


def paired_noise(difference: np.ndarray, day: np.ndarray) -> float:
    """Standard error of the mean of a per-row difference, days as the independent units
    (hours within a day move together)."""
    return day_clustered_se(np.asarray(difference, dtype=float) / len(difference), day)


def day_clustered_se(contribution: np.ndarray, day: np.ndarray) -> float:
    """Standard error of ``contribution.sum()`` with the days as clusters: each day's sum
    against its rows' share of the total (infinite with fewer than two days)."""
    days, index = np.unique(day, return_inverse=True)
    if len(days) < 2:
        return float("inf")
    per_day = np.bincount(index, weights=contribution)
    share = np.bincount(index) / len(contribution)
    centred = per_day - share * contribution.sum()
    return float(np.sqrt(np.sum(centred**2) * len(days) / (len(days) - 1)))


def _pit_by_bucket(
    y: np.ndarray, mean: np.ndarray, horizon: np.ndarray, forecaster: Distribution
) -> float:
    """Randomised-PIT 80% coverage with each horizon bucket's own dispersion."""
    bucket = bucket_index(horizon)
    inside = 0.0
    for index in np.unique(bucket):
        part = bucket == index
        size = forecaster.bucket_distribution(int(index))[0]
        inside += pit_coverage(y[part], mean[part], size) * part.sum()
    return float(inside / len(y))


def skill(value: float, reference: float) -> float:
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
