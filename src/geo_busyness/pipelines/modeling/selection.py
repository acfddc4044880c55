"""Rolling-origin validation: the folds, the loss the gate judges, and every choice made on it.

Validation is a run of weekly folds counting back from the test window, as many as
``validation_folds`` and the history allow. A learned candidate is fitted before each fold
(``fit_candidates``); the baselines need no fit. Everything is judged by ``gate_loss``: half
the P50's MAE and half the mean's RMSE, each relative to the plain seasonal naive's on the same
rows (the two metrics the backtest reports and the gate judges), averaged over products x
buckets. On the pooled fold rows, per horizon bucket:

1. the recent-level baseline's weights (``recency.GRID``), and the pooled-level candidate's
   prior weights (``pooling.ADJACENT_WEEKS`` x ``pooling.POOL_WEEKS``) and its own recency
   weights (departing from the recent level's);
2. each learned candidate's combination with the three baselines (``COMBINATION_GRID``, pure
   baselines included, so a learned model that adds nothing gets weight 0);
3. the chosen mean's negative-binomial size (maximum likelihood) and median rule (the Poisson
   median, a baseline's own; for a learned model the negative binomial's where it is clearly
   better by MAE in every fold).

1 and 2 depart from the simpler choice (no recency, no learned share) only where validation
shows them better by more than ``tuning_noise_z`` standard errors over days. The candidate with
the lowest loss is the model (``candidates.select_forecaster``).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model import recency
from geo_busyness.model.distribution import MEDIAN_RULES, fit_size, medians, poisson_quantile
from geo_busyness.model.forecaster import (
    BASELINES,
    BLEND_COMPONENTS,
    HORIZON_BUCKETS,
    BusynessForecaster,
    bucket_index,
    combine,
)
from geo_busyness.model.history import CountHistory, DerivedHistory
from geo_busyness.model.origin_features import MIN_ORIGIN
from geo_busyness.model.pooling import ADJACENT_WEEKS, POOL_WEEKS, PoolingParts
from geo_busyness.pipelines.modeling.backtest import day_clustered_se, paired_noise
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
    return _loss_against(y, p50, mean, _naive_errors(y, reference))


def _naive_errors(
    y: np.ndarray, reference: np.ndarray, median: np.ndarray | None = None
) -> tuple[float, float]:
    """The seasonal naive's MAE (its Poisson median, ``median`` if already known) and RMSE
    (its mean, ``reference``)."""
    median = poisson_quantile(reference, 0.5) if median is None else median
    naive_mae = np.mean(np.abs(y - median))
    return naive_mae, np.sqrt(np.mean((y - reference) ** 2))


def _loss_against(
    y: np.ndarray, p50: np.ndarray, mean: np.ndarray, naive: tuple[float, float]
) -> float:
    """``gate_loss`` given the naive's (MAE, RMSE)."""
    mae, rmse = np.mean(np.abs(y - p50)), np.sqrt(np.mean((y - mean) ** 2))
    return float(0.5 * _ratio(mae, naive[0]) + 0.5 * _ratio(rmse, naive[1]))


def _ratio(value: float, reference: float) -> float:
    """value / reference; 1 where both are 0 (a perfect reference matched), 2 where only the
    reference is perfect."""
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


def sample_rows(mask: np.ndarray, seed: int, limit: int = _GRID_ROWS) -> np.ndarray:
    """Indices of ``mask``'s rows, a seeded sample of at most ``limit``."""
    index = np.flatnonzero(mask)
    if len(index) > limit:
        index = np.sort(np.random.default_rng(seed).choice(index, limit, replace=False))
    return index


class BucketRows:
    """One horizon bucket's validation rows, sampled per product: every product weighs the
    same in the loss, as in ``average_loss`` (the gate judges each product's bucket; hourly
    nowcast origins would otherwise drown the midnight origins of the day ahead)."""

    def __init__(
        self,
        pooled: pd.DataFrame,
        index: int,
        seed: int,
        keys: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``keys``: ``bucket_keys(pooled)``, if already computed."""
        bucket, product = bucket_keys(pooled) if keys is None else keys
        in_bucket = bucket == index
        masks = [in_bucket & (product == code) for code in range(product.max(initial=-1) + 1)]
        masks = [mask for mask in masks if mask.any()]
        limit = _GRID_ROWS // max(len(masks), 1)
        picks = [sample_rows(mask, seed, limit) for mask in masks]
        self.pick = np.concatenate(picks) if picks else np.empty(0, np.int64)
        self.group = np.repeat(np.arange(len(picks)), [len(p) for p in picks])
        self.size = np.bincount(self.group).astype(float) if picks else np.empty(0)
        self.y = pooled["actual"].to_numpy()[self.pick]
        self.day = pooled["day"].to_numpy()[self.pick]
        # Each product's rows are one contiguous run of the sample: slices, views not copies.
        ends = np.cumsum([len(p) for p in picks], dtype=int)
        self.parts = [slice(end - len(p), end) for p, end in zip(picks, ends, strict=True)]
        # The naive's Poisson median and errors per product, for the last reference array seen:
        # a grid search scores every candidate against the same one (the median is the costly
        # part).
        self._naive: tuple[np.ndarray, np.ndarray, list[tuple[float, float]]] | None = None
        self._columns: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
        self._ratios: tuple[pd.DataFrame, CountHistory, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.pick)

    def column(self, pooled: pd.DataFrame, name: str) -> np.ndarray:
        """A column of the sampled rows (read-only: kept per table and name, a grid search
        reads the same ones at every point; a table must not change while its rows are used)."""
        kept = self._columns.get(name)
        if kept is None or kept[0] is not pooled:
            values = pooled[name].to_numpy()[self.pick]
            values.flags.writeable = False
            kept = self._columns[name] = (pooled, values)
        return kept[1]

    def log_ratios(self, pooled: pd.DataFrame, derived: DerivedHistory) -> np.ndarray:
        """``recency.log_ratios`` of the sampled rows (read-only: kept per table and count
        history, which every tuning of the table reads again)."""
        kept = self._ratios
        if kept is None or kept[0] is not pooled or kept[1] is not derived.history:
            values = recency.log_ratios(
                derived, self.column(pooled, "row"), self.column(pooled, "origin")
            )
            values.flags.writeable = False
            kept = self._ratios = (pooled, derived.history, values)
        return kept[2]

    def _reference(self, reference: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """The naive's Poisson median of ``reference`` and its (MAE, RMSE) per product, kept
        for the last reference array seen."""
        if self._naive is None or self._naive[0] is not reference:
            median = poisson_quantile(reference, 0.5)
            naive = [
                _naive_errors(self.y[part], reference[part], median[part]) for part in self.parts
            ]
            self._naive = (reference, median, naive)
        return self._naive[1], self._naive[2]

    def _parts(self, mean: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the absolute error of the Poisson median over its product's naive MAE, and
        the squared error over its product's naive MSE."""
        naive_abs = np.abs(self.y - self._reference(reference)[0])
        naive_mae = np.bincount(self.group, naive_abs) / self.size
        naive_mse = np.bincount(self.group, (self.y - reference) ** 2) / self.size
        safe_mae, safe_mse = np.maximum(naive_mae, 1e-12), np.maximum(naive_mse, 1e-12)
        absolute = np.abs(self.y - poisson_quantile(mean, 0.5)) / safe_mae[self.group]
        return absolute, (self.y - mean) ** 2 / safe_mse[self.group]

    def loss(self, mean: np.ndarray, reference: np.ndarray) -> float:
        """``gate_loss`` per product, averaged over the products."""
        p50 = poisson_quantile(mean, 0.5)
        naive = self._reference(reference)[1]
        return float(
            np.mean(
                [
                    _loss_against(self.y[part], p50[part], mean[part], errors)
                    for part, errors in zip(self.parts, naive, strict=True)
                ]
            )
        )

    def clearly_better(
        self, better: np.ndarray, simpler: np.ndarray, reference: np.ndarray, z: float
    ) -> bool:
        """Whether ``better`` beats ``simpler`` on the loss by more than ``z`` standard errors
        (the linearised loss per row, summed per day: days are the independent units)."""
        gain = self.loss(simpler, reference) - self.loss(better, reference)
        rows = []
        for mean in (simpler, better):
            absolute, squared = self._parts(mean, reference)
            rows.append(0.5 * absolute + 0.25 * squared)
        weight = 1.0 / (len(self.size) * self.size[self.group])
        return bool(gain > z * day_clustered_se((rows[0] - rows[1]) * weight, self.day))


def bucket_rows(pooled: pd.DataFrame, seed: int) -> list[BucketRows]:
    """Every horizon bucket's sampled rows of ``pooled``: built once per tuning and shared by
    its fits (sampling millions of rows is the costly part of a ``BucketRows``)."""
    keys = bucket_keys(pooled)
    return [BucketRows(pooled, index, seed, keys) for index in range(len(HORIZON_BUCKETS))]


def bucket_keys(pooled: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's horizon bucket and product code (products numbered in order of appearance):
    integers, compared faster than the product names."""
    return bucket_index(pooled[HORIZON].to_numpy()), pd.factorize(pooled["product"])[0]


def _profile(
    forecaster: BusynessForecaster,
    pooled: pd.DataFrame,
    rows: BucketRows,
    pool: tuple[float, float] = (0.0, 0.0),
    parts: PoolingParts | None = None,
) -> np.ndarray:
    """The sampled rows' profile pooled with the neighbours and the adjacent hours at ``pool``
    (weeks of each prior; zeros: the raw one); ``parts``: ``_pooling_parts`` of the rows, if
    already computed (a grid of weights reuses them)."""
    if max(pool) <= 0:
        return rows.column(pooled, REFERENCE)
    return (parts or _pooling_parts(forecaster, pooled, rows)).pooled(*pool)


def _pooling_parts(
    forecaster: BusynessForecaster, pooled: pd.DataFrame, rows: BucketRows
) -> PoolingParts:
    """The sampled rows' pooling parts (``pooling.PoolingParts``)."""
    origin = rows.column(pooled, "origin")
    target = origin + rows.column(pooled, HORIZON) - 1
    return forecaster.neighbourhood.pooling_parts(rows.column(pooled, "row"), origin, target)


def fit_recency(
    forecaster: BusynessForecaster,
    pooled: pd.DataFrame,
    seed: int,
    z: float = 2.0,
    *,
    pool: tuple[float, float] = (0.0, 0.0),
    simpler: list[list[float]] | None = None,
    buckets: list[BucketRows] | None = None,
) -> list[list[float]]:
    """Per horizon bucket, the ``recency.GRID`` weights of lowest loss on the rows, on the
    profile pooled at ``pool`` (neighbours, adjacent hours; zeros: the raw profile); the
    ``simpler`` weights of that bucket (default all zeros: the profile alone) unless they beat
    them by more than ``z`` standard errors. ``buckets``: ``bucket_rows(pooled, seed)``, if
    already built."""
    weights = []
    for index, rows in enumerate(buckets or bucket_rows(pooled, seed)):
        if not len(rows):
            weights.append(list(recency.DEFAULT_WEIGHTS))
            continue
        plain, profile = rows.column(pooled, REFERENCE), _profile(forecaster, pooled, rows, pool)
        ratios = rows.log_ratios(pooled, forecaster.derived)
        means = [profile * recency.recent_factor(ratios, w) for w in recency.GRID]
        lowest = int(np.argmin([rows.loss(mean, plain) for mean in means]))
        best = recency.GRID[lowest]
        fallback = np.zeros(len(recency.COMPONENTS)) if simpler is None else simpler[index]
        fallback_mean = profile * recency.recent_factor(ratios, np.asarray(fallback))
        if not rows.clearly_better(means[lowest], fallback_mean, plain, z):
            best = fallback
        weights.append([float(v) for v in best])
    return weights


def fit_pool_weeks(
    forecaster: BusynessForecaster,
    pooled: pd.DataFrame,
    recency_weights: list[list[float]],
    seed: int,
    buckets: list[BucketRows] | None = None,
) -> tuple[float, float]:
    """The (neighbours, adjacent hours) prior weights of ``POOL_WEEKS`` x ``ADJACENT_WEEKS``
    of lowest loss, averaged over horizon buckets, with the recent level's
    ``recency_weights`` (its own are fitted after, on the chosen profile)."""
    buckets = [
        (i, rows) for i, rows in enumerate(buckets or bucket_rows(pooled, seed)) if len(rows)
    ]
    if not buckets:
        return 0.0, 0.0
    factors = {
        i: recency.recent_factor(
            rows.log_ratios(pooled, forecaster.derived), np.asarray(recency_weights[i])
        )
        for i, rows in buckets
    }
    # The pieces that do not depend on the prior weights, once per bucket: every grid point
    # only combines them.
    parts = {i: _pooling_parts(forecaster, pooled, rows) for i, rows in buckets}
    grid = list(itertools.product(POOL_WEEKS, ADJACENT_WEEKS))
    losses = [
        np.mean(
            [
                rows.loss(
                    _profile(forecaster, pooled, rows, pool, parts[i]) * factors[i],
                    rows.column(pooled, REFERENCE),
                )
                for i, rows in buckets
            ]
        )
        for pool in grid
    ]
    weeks, adjacent = grid[int(np.argmin(losses))]
    return float(weeks), float(adjacent)


def fit_combination(
    pooled: pd.DataFrame,
    name: str,
    seed: int,
    z: float = 2.0,
    buckets: list[BucketRows] | None = None,
) -> list[list[float]]:
    """Per horizon bucket, the ``COMBINATION_GRID`` weights of the learned column ``name`` with
    the baselines of lowest loss (Poisson median) on the rows; the best pure-baseline weights
    unless the learned model's share beats them by more than ``z`` standard errors."""
    weights = []
    for rows in buckets or bucket_rows(pooled, seed):
        if not len(rows):
            weights.append([1.0, 0.0, 0.0])
            continue
        columns = [rows.column(pooled, c) for c in (name, *BASELINES)]
        means = [combine(w, *columns) for w in COMBINATION_GRID]
        losses = np.array([rows.loss(mean, columns[1]) for mean in means])
        best = int(np.argmin(losses))
        pure = np.flatnonzero(COMBINATION_GRID[:, 0] == 0)
        simpler = int(pure[np.argmin(losses[pure])])
        if not rows.clearly_better(means[best], means[simpler], columns[1], z):
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
        # Each rule's P50 once (``best_median_rule``'s choice, made from the same errors): the
        # negative binomial's quantiles of every row of a bucket are the costly part.
        errors = {r: np.abs(y - p50) for r, p50 in medians(mean, size).items()} if len(y) else {}
        if errors and min(MEDIAN_RULES, key=lambda r: float(np.mean(errors[r]))) != rule:
            gain = errors[rule] - errors["negative_binomial"]
            folds = pooled["fold"].to_numpy()[part]
            everywhere = all(gain[folds == k].mean() > 0 for k in np.unique(folds))
            noise = paired_noise(gain, pooled["day"].to_numpy()[part])
            if everywhere and gain.mean() > z * noise:
                rule = "negative_binomial"
        rules.append(rule)
    return sizes, rules
