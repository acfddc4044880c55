"""Rolling-origin validation: the folds, the loss the gate judges, and every choice made on it.

Validation is a run of weekly folds counting back from the test window, as many as
``validation_folds`` and the history allow. A learned candidate is fitted before each fold
(``fit_candidates``); the baselines need no fit. On the pooled fold rows, per horizon bucket:

1. the recent-level baseline's weights (``recency.GRID``),
2. each learned candidate's combination with the three baselines (``COMBINATION_GRID``, pure
   baselines included, so a learned model that adds nothing gets weight 0),

each departing from the simpler choice (no recency, no learned share) only where validation
shows it better by more than ``tuning_noise_z`` standard errors over days, then
3. the chosen mean's negative-binomial size (maximum likelihood) and median rule (the Poisson
   median unless the negative binomial's is clearly better by MAE),

all by ``gate_loss``: half the P50's MAE and half the mean's RMSE, each relative to the plain
seasonal naive's on the same rows, the two metrics the backtest reports and the gate judges.
The candidate with the lowest loss averaged over products x buckets is the model.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model import recency
from geo_busyness.model.distribution import best_median_rule, fit_size, interval, poisson_quantile
from geo_busyness.model.forecaster import (
    BASELINES,
    BLEND_COMPONENTS,
    HORIZON_BUCKETS,
    BusynessForecaster,
    bucket_index,
    combine,
)
from geo_busyness.model.origin_features import MIN_ORIGIN
from geo_busyness.pipelines.modeling.backtest import paired_noise
from geo_busyness.schemas import HORIZON

logger = logging.getLogger(__name__)

REFERENCE = "seasonal_naive"
#: Hours of history a fold needs before it: a baseline, a week of profile; a learned model,
#: the features' own minimum plus ``learned_min_train_days`` of training origins.
MIN_BASELINE_HOURS = 168


def min_learned_hours(params: dict[str, Any]) -> int:
    """Hours a learned model needs before a fold (its features' minimum + training origins)."""
    return MIN_ORIGIN + 24 * int(params.get("learned_min_train_days", 7))


#: Weights (learned, level-adjusted, recent-level) on a 0.25 grid, the plain profile the rest.
COMBINATION_GRID = np.array(
    [w for w in itertools.product(np.arange(5) / 4, repeat=len(BLEND_COMPONENTS)) if sum(w) <= 1]
)
#: Rows per bucket a grid search reads at most (a seeded sample beyond).
_GRID_ROWS = 200_000


def gate_loss(y: np.ndarray, p50: np.ndarray, mean: np.ndarray, reference: np.ndarray) -> float:
    """Half the P50's MAE and half the mean's RMSE, each over the seasonal naive's (whose P50 is
    the Poisson median of ``reference``, its mean): 1.0 is the naive, lower is better."""
    naive_mae = np.mean(np.abs(y - poisson_quantile(reference, 0.5)))
    naive_rmse = np.sqrt(np.mean((y - reference) ** 2))
    mae, rmse = np.mean(np.abs(y - p50)), np.sqrt(np.mean((y - mean) ** 2))
    return float(0.5 * _ratio(mae, naive_mae) + 0.5 * _ratio(rmse, naive_rmse))


def _ratio(value: float, reference: float) -> float:
    """value / reference, 1 where both are 0 (a perfect reference matched)."""
    if reference > 0:
        return float(value / reference)
    return 1.0 if value == 0 else 2.0


def average_loss(scores: list[dict[str, Any]], name: str) -> float:
    """``gate_loss`` of one forecaster from backtest scores, averaged over products x buckets."""
    losses = [
        0.5 * _ratio(row[name]["mae"], row[REFERENCE]["mae"])
        + 0.5 * _ratio(row[name]["rmse"], row[REFERENCE]["rmse"])
        for row in scores
    ]
    return float(np.mean(losses)) if losses else float("nan")


def fold_starts(
    test_start: int, fold_hours: int, folds: int, minimum: int
) -> list[tuple[int, int]]:
    """Up to ``folds`` [start, end) windows of ``fold_hours`` counting back from
    ``test_start``, each with at least ``minimum`` hours before it (latest first)."""
    out = []
    for k in range(1, folds + 1):
        start = test_start - k * fold_hours
        if start < minimum:
            break
        out.append((start, start + fold_hours))
    return out


def sample_rows(mask: np.ndarray, seed: int) -> np.ndarray:
    """Indices of ``mask``'s rows, a seeded sample of at most ``_GRID_ROWS``."""
    index = np.flatnonzero(mask)
    if len(index) > _GRID_ROWS:
        index = np.sort(np.random.default_rng(seed).choice(index, _GRID_ROWS, replace=False))
    return index


def clearly_better(  # noqa: PLR0917 - rows, their days, two means, the reference, z
    y: np.ndarray,
    day: np.ndarray,
    better: np.ndarray,
    simpler: np.ndarray,
    reference: np.ndarray,
    z: float,
) -> bool:
    """Whether the mean ``better`` beats ``simpler`` on ``gate_loss`` by more than ``z``
    standard errors of the difference (per-row contributions of the linearised loss, their
    per-day means as the independent units; Poisson medians)."""
    naive_mae = np.mean(np.abs(y - poisson_quantile(reference, 0.5)))
    naive_mse = np.mean((y - reference) ** 2)
    if naive_mae <= 0 or naive_mse <= 0:
        return False
    rows = []
    for mean in (better, simpler):
        error = y - mean
        rows.append(
            0.5 * np.abs(y - poisson_quantile(mean, 0.5)) / naive_mae + 0.25 * error**2 / naive_mse
        )
    gain = gate_loss(y, poisson_quantile(simpler, 0.5), simpler, reference) - gate_loss(
        y, poisson_quantile(better, 0.5), better, reference
    )
    return bool(gain > z * paired_noise(rows[1] - rows[0], day))


def fit_recency(
    forecaster: BusynessForecaster, pooled: pd.DataFrame, seed: int, z: float = 2.0
) -> list[list[float]]:
    """Per horizon bucket, the ``recency.GRID`` weights of lowest ``gate_loss`` on the rows;
    all zeros (the plain profile) unless they beat it by more than ``z`` standard errors."""
    bucket = bucket_index(pooled[HORIZON].to_numpy())
    weights = []
    for index in range(len(HORIZON_BUCKETS)):
        pick = sample_rows(bucket == index, seed)
        if not len(pick):
            weights.append(list(recency.DEFAULT_WEIGHTS))
            continue
        y, day = pooled["actual"].to_numpy()[pick], pooled["day"].to_numpy()[pick]
        plain = pooled[REFERENCE].to_numpy()[pick]
        ratios = recency.log_ratios(
            forecaster.derived, pooled["row"].to_numpy()[pick], pooled["origin"].to_numpy()[pick]
        )
        means = [plain * recency.recent_factor(ratios, w) for w in recency.GRID]
        losses = [gate_loss(y, poisson_quantile(mean, 0.5), mean, plain) for mean in means]
        best = int(np.argmin(losses))
        if not clearly_better(y, day, means[best], plain, plain, z):
            best = 0  # GRID[0] is all zeros
        weights.append([float(v) for v in recency.GRID[best]])
    return weights


def fit_combination(
    pooled: pd.DataFrame, name: str, seed: int, z: float = 2.0
) -> list[list[float]]:
    """Per horizon bucket, the ``COMBINATION_GRID`` weights of the learned column ``name`` with
    the baselines of lowest ``gate_loss`` (Poisson median) on the rows; the best pure-baseline
    weights unless the learned model's share beats them by more than ``z`` standard errors."""
    bucket = bucket_index(pooled[HORIZON].to_numpy())
    weights = []
    for index in range(len(HORIZON_BUCKETS)):
        pick = sample_rows(bucket == index, seed)
        if not len(pick):
            weights.append([1.0, 0.0, 0.0])
            continue
        y, day = pooled["actual"].to_numpy()[pick], pooled["day"].to_numpy()[pick]
        columns = [pooled[c].to_numpy()[pick] for c in (name, *BASELINES)]
        means = [combine(w, *columns) for w in COMBINATION_GRID]
        losses = np.array([gate_loss(y, poisson_quantile(m, 0.5), m, columns[1]) for m in means])
        best = int(np.argmin(losses))
        pure = np.flatnonzero(COMBINATION_GRID[:, 0] == 0)
        simpler = int(pure[np.argmin(losses[pure])])
        if not clearly_better(y, day, means[best], means[simpler], columns[1], z):
            best = simpler
        weights.append([float(v) for v in COMBINATION_GRID[best]])
    return weights


def combined_column(pooled: pd.DataFrame, name: str, weights: list[list[float]]) -> np.ndarray:
    """The learned column ``name`` combined with the baselines by bucket ``weights``."""
    weight = np.asarray(weights)[bucket_index(pooled[HORIZON].to_numpy())]
    return combine(weight, *(pooled[c].to_numpy() for c in (name, *BASELINES)))


def fit_distribution(
    pooled: pd.DataFrame, name: str, seed: int, z: float = 2.0
) -> tuple[list[float | None], list[str]]:
    """Per horizon bucket, the size (maximum likelihood) of a column's mean, and its median
    rule: the Poisson median (the baselines'), unless the negative binomial's scores a lower
    MAE by more than ``z`` standard errors over days and in every fold (a lower median that
    won only while the level fell is not kept)."""
    bucket = bucket_index(pooled[HORIZON].to_numpy())
    sizes, rules = [], []
    for index in range(len(HORIZON_BUCKETS)):
        part = bucket == index
        y, mean = pooled["actual"].to_numpy()[part], pooled[name].to_numpy()[part]
        size = fit_size(y, mean, seed)
        sizes.append(size)
        rule = "poisson"
        if len(y) and best_median_rule(y, mean, size) != rule:
            gain = np.abs(y - interval(mean, size, rule)[1]) - np.abs(
                y - interval(mean, size, "negative_binomial")[1]
            )
            folds = pooled["fold"].to_numpy()[part]
            everywhere = all(gain[folds == k].mean() > 0 for k in np.unique(folds))
            noise = paired_noise(gain, pooled["day"].to_numpy()[part])
            if everywhere and gain.mean() > z * noise:
                rule = "negative_binomial"
        rules.append(rule)
    return sizes, rules
