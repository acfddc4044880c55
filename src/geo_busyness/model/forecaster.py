"""The busyness forecaster: the one model artifact, a statistical baseline or a learned model.

``BusynessForecaster(method=...)`` answers (cell, hour) pairs from the counts it knows:

- ``seasonal_naive``: the cell's mean at the same hour of the week over all past weeks;
- ``level_adjusted``: that profile times the city's last-week ratio of actual to profile;
- ``recent_level``: that profile times a weighted recent level (city-wide ratios over the last
  3 h, day and week and the cell's own week, weights per horizon bucket chosen on validation:
  ``recency.py``);
- ``pooled_level``: the recent level on a profile pooled with the cell's adjacent hours and its
  H3 neighbours' weekly shape, the priors' weights chosen on validation (``pooling.py``): for
  short, sparse histories;
- ``gradient_boosting``: a Poisson HistGradientBoosting model of the ratio between the count
  and the cell's shrunk profile (the profile as an exposure: fitting ``y / base`` with weight
  ``base`` is Poisson regression with offset ``log(base)``); with ``exposure="level_adjusted"``
  the exposure is that profile times the city's last-week ratio and the ratio features are
  restated against it, so a lasting level the trees never saw carries through by itself;
- ``random_forest``: the same ratio with a Poisson-criterion forest, grid-searched over
  time-ordered folds.

A learned model's mean is combined per horizon bucket with the three baselines (weights chosen
on validation, a pure baseline among them). The answer to a pair is the mean, and P10/P50/P90
of a negative binomial around it whose dispersion and median rule are chosen per horizon bucket
on validation (``distribution.py``; Poisson until then). The origin of a served forecast is the
end of the known counts; ``with_counts`` extends them (no refit), so the inference pipeline
forecasts from the latest hour.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

from geo_busyness.model import recency
from geo_busyness.model.cell_hours import HOUR_NS, HOURS_PER_WEEK, utc_hour_ns
from geo_busyness.model.distribution import interval
from geo_busyness.model.features import CELL_FEATURES, UNSEEN_CELL, BusynessFeatures
from geo_busyness.model.geo import h3_cells
from geo_busyness.model.history import CountHistory, DerivedHistory
from geo_busyness.model.origin_features import (
    LEVEL_RATIO,
    LEVEL_RELATIVE,
    MIN_ORIGIN,
    ORIGIN_FEATURES,
    city_ratio,
    origin_features,
)
from geo_busyness.model.pooling import NeighbourhoodSums
from geo_busyness.model.tree_ensemble import SMALL_INPUT_ROWS, predict_ensemble, tree_ensemble
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME, HORIZON

logger = logging.getLogger(__name__)

#: The statistical baselines (no regressor), every one a candidate and a column of every table.
BASELINES = ("seasonal_naive", "level_adjusted", "recent_level")
#: A statistical candidate beyond the baselines: tuned on validation, no regressor.
POOLED = "pooled_level"
METHODS = (*BASELINES, POOLED, "gradient_boosting", "random_forest")
#: What a learned model's ratio multiplies: the shrunk profile, or that at last week's level.
EXPOSURES = ("profile", "level_adjusted")
#: Methods with a learned ratio regressor (the others are statistical baselines).
LEARNED = ("gradient_boosting", "random_forest")
#: Horizon buckets (hours ahead, inclusive): nowcast, the rest of the day, the rest of the week.
HORIZON_BUCKETS = ((1, 3), (4, 24), (25, 168))
#: What a combination weighs, the plain profile taking the rest of 1 (``blend_weights_``).
BLEND_COMPONENTS = ("learned", "level_adjusted", "recent_level")


class BusynessForecaster(BaseEstimator):
    """Events per cell and hour ahead of an origin; see the module docstring.

    Parameters
    ----------
    method: one of ``METHODS``.
    shrink_weeks: weight (in weeks of data) of the prior a sparse cell's profile is shrunk to.
    base_floor: lowest exposure of the learned model (keeps ratios of empty cells finite).
    exposure: what the learned ratio multiplies (``EXPOSURES``): the cell's shrunk profile
        (``profile``), or that times the city's actual/profile ratio over the last week
        (``level_adjusted``), so a level the trees never saw moves the forecast by itself.
    max_train_rows: (cell, origin, horizon) rows sampled for the learned model.
    holidays: local dates (ISO strings) that are public holidays.
    regressor_params: hyper-parameters of the learned regressor.
    grid: a random forest's grid (GridSearchCV over ``cv_splits`` time-ordered folds).
    """

    def __init__(
        self,
        *,
        method: str = "gradient_boosting",
        shrink_weeks: float = 4.0,
        base_floor: float = 0.05,
        exposure: str = "profile",
        max_train_rows: int = 600_000,
        regressor_params: dict[str, Any] | None = None,
        grid: dict[str, Sequence[Any]] | None = None,
        cv_splits: int = 3,
        holidays: Sequence[str] = (),
        exclude_features: Sequence[str] = (),
        random_state: int = 42,
    ) -> None:
        self.method = method
        self.shrink_weeks = shrink_weeks
        self.base_floor = base_floor
        self.exposure = exposure
        self.max_train_rows = max_train_rows
        self.regressor_params = regressor_params
        self.grid = grid
        self.cv_splits = cv_splits
        self.holidays = holidays
        self.exclude_features = exclude_features
        self.random_state = random_state

    # ---------------------------------------------------------------- state
    def __getstate__(self) -> dict[str, Any]:
        """The state without the derived sums (rebuilt from the counts on first use), as
        ``copy.copy`` takes it; the artifact (``artifact.py``) leaves out the same."""
        state = self.__dict__.copy()
        state.pop("_derived", None)
        state.pop("_neighbourhood", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy's state, or an artifact's (``artifact.py``); older states: a profile exposure,
        a (learned, level-adjusted) blend, one size and the negative binomial's median in every
        bucket, no recent-level weights."""
        defaults = {
            "exposure": "profile",
            "recency_weights_": None,
            "median_rule_": None,
            "pool_weeks_": 0.0,
            "pool_adjacent_weeks_": 0.0,
        }
        self.__dict__.update({**defaults, "fitted_through_ns_": None, **state})
        if self.blend_weights_ is not None:
            self.blend_weights_ = [[*w, 0.0][: len(BLEND_COMPONENTS)] for w in self.blend_weights_]

    @property
    def derived(self) -> DerivedHistory:
        """Running sums of the known counts, built once per history."""
        if getattr(self, "_derived", None) is None:
            self._derived = DerivedHistory(self.history_)
        return self._derived

    @property
    def neighbourhood(self) -> NeighbourhoodSums:
        """Counts and profiles summed over each cell's H3 neighbours (``pooling.py``)."""
        if getattr(self, "_neighbourhood", None) is None:
            self._neighbourhood = NeighbourhoodSums(self.derived)
        return self._neighbourhood

    @property
    def resolution(self) -> int:
        """H3 resolution of the cells."""
        return self.cell_features_.resolution

    @property
    def timezone(self) -> str:
        """The source's local time zone (calendar features)."""
        return self.history_.timezone

    @property
    def origin(self) -> pd.Timestamp:
        """The origin of served forecasts: the hour after the last known count."""
        return pd.Timestamp(self.history_.end_ns, tz="UTC")

    # ---------------------------------------------------------------- fit
    def fit(
        self, history: CountHistory, cell_features: BusynessFeatures, train_end: int | None = None
    ) -> BusynessForecaster:
        """Fit on rows whose target hour lies before position ``train_end`` (default: all)."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        if self.exposure not in EXPOSURES:
            raise ValueError(
                f"modeling.forecaster.exposure must be one of {EXPOSURES}, got {self.exposure!r}."
            )
        self.history_, self.cell_features_ = history, cell_features
        self._derived = self._neighbourhood = None
        self.holiday_days_ = np.sort(
            pd.to_datetime(list(self.holidays)).normalize().asi8 // (24 * 3_600_000_000_000)
        )
        unknown = sorted(set(self.exclude_features) - set(ORIGIN_FEATURES) - set(CELL_FEATURES))
        if unknown:
            raise ValueError(f"exclude_features names unknown feature(s) {unknown}.")
        self.origin_feature_names_ = tuple(
            name for name in ORIGIN_FEATURES if name not in self.exclude_features
        )
        self.cell_feature_names_, self._cell_matrix_ = _cell_matrix(
            history.cells, cell_features, self.exclude_features
        )
        self.feature_names_ = (*self.origin_feature_names_, *self.cell_feature_names_)
        self.size_ = None  # Poisson until the selection sets sizes per bucket
        self.median_rule_ = None  # the negative binomial's median until chosen
        self.blend_weights_ = None  # the learned mean alone until a combination is chosen
        self.recency_weights_ = None  # recency.DEFAULT_WEIGHTS until chosen
        # The raw profile until validation chooses the pooling weights (neighbours, hours).
        self.pool_weeks_ = 0.0
        self.pool_adjacent_weeks_ = 0.0
        self.regressor_ = None
        self.search_ = None
        end = history.hours if train_end is None else int(train_end)
        self.fitted_through_ns_ = history.start_ns + end * HOUR_NS
        if self.method in LEARNED:
            rows, origin, horizon = training_rows(
                self.derived, end, self.max_train_rows, self.random_state
            )
            if not len(rows):
                raise ValueError(
                    f"Too little history to train: rows need {MIN_ORIGIN} hours before their "
                    f"origin, the train window has {end}."
                )
            features, base = self.design(rows, origin, horizon)
            target = self.derived.counts[rows, origin + horizon - 1]
            self.regressor_ = self._fit_regressor(features, target / base, base, origin + horizon)
            logger.info(
                "Fitted %s on %s (cell, origin, horizon) rows", self.method, f"{len(rows):,}"
            )
        return self

    def _fit_regressor(
        self, features: np.ndarray, ratio: np.ndarray, base: np.ndarray, target_hour: np.ndarray
    ) -> Any:
        """The ratio regressor (Poisson loss, exposure as weight); a forest is grid-searched
        over time-ordered folds of the rows (sorted by target hour)."""
        params = dict(self.regressor_params or {})
        if self.method == "gradient_boosting":
            return HistGradientBoostingRegressor(
                loss="poisson", early_stopping=False, random_state=self.random_state, **params
            ).fit(features, ratio, sample_weight=base)
        order = np.argsort(target_hour, kind="stable")
        forest = RandomForestRegressor(
            criterion="poisson", random_state=self.random_state, **params
        )
        if not self.grid:
            return forest.fit(features[order], ratio[order], sample_weight=base[order])
        self.search_ = GridSearchCV(
            forest,
            param_grid={name: list(values) for name, values in self.grid.items()},
            cv=TimeSeriesSplit(n_splits=self.cv_splits),
            scoring="neg_mean_poisson_deviance",
        ).fit(features[order], ratio[order], sample_weight=base[order])
        logger.info("Random forest grid search: best %s", self.search_.best_params_)
        # Single-threaded prediction sums the trees in a fixed order: repeatable answers.
        return self.search_.best_estimator_.set_params(n_jobs=1)

    def design(
        self, rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feature matrix (``feature_names_`` order) and exposure of (row, origin, horizon)."""
        features = origin_features(
            self.derived,
            rows,
            origin,
            horizon,
            shrink_weeks=self.shrink_weeks,
            holidays=self.holiday_days_,
        )
        base = np.maximum(features["shrunk_profile"], self.base_floor)
        if self.exposure == "level_adjusted":
            level = features[LEVEL_RATIO]
            base = base * np.exp(level)
            for name in LEVEL_RELATIVE:
                features[name] = features[name] - level
        names = self.origin_feature_names_
        # Column by column into a column-major matrix: each write is contiguous (a row-major
        # stack writes every column across all rows); the regressors read either layout alike.
        matrix = np.empty((len(names) + len(self.cell_feature_names_), len(base))).T
        for j, name in enumerate(names):
            matrix[:, j] = features[name]
        if self.cell_feature_names_:
            matrix[:, len(names) :] = self._cell_matrix_[np.asarray(rows)]
        return matrix, base

    # ---------------------------------------------------------------- predict
    def predict_rows(self, rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray) -> np.ndarray:
        """Mean forecast of (history row, origin position, horizon) rows."""
        if self.method == POOLED:
            return self.pooled_means(
                rows, origin, horizon, self.pool_weeks_, self.pool_adjacent_weeks_
            )
        origin, horizon = np.asarray(origin), np.asarray(horizon)
        plain = self._profile_at(rows, origin, horizon)
        if self.method == "seasonal_naive":
            return plain
        if self.method == "level_adjusted":
            return plain * self._city_level(origin)
        if self.method == "recent_level":
            return plain * self._recent_factor(rows, origin, horizon)
        features, base = self.design(rows, origin, horizon)
        learned = base * self._regress(features)
        if self.blend_weights_ is None:
            return learned
        weight = bucket_values(horizon, self.blend_weights_)
        # The recent level only where a bucket weighs it (its ratios are the costly part):
        # elsewhere 0 x a finite mean adds exactly what 0 x 0 does.
        recent = np.zeros(len(plain))
        weighed = weight[:, 2] != 0
        if weighed.any():
            rows, origin, horizon = np.broadcast_arrays(rows, origin, horizon)
            recent[weighed] = plain[weighed] * self._recent_factor(
                rows[weighed], origin[weighed], horizon[weighed]
            )
        return combine(weight, learned, plain, plain * self._city_level(origin), recent)

    def baseline_means(
        self, rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three baselines: the seasonal profile over all weeks before each origin, that
        profile times the city's actual/profile ratio over the last week, and that profile
        times the recent level (``recency.py``, this forecaster's weights per bucket)."""
        origin, horizon = np.asarray(origin), np.asarray(horizon)
        profile = self._profile_at(rows, origin, horizon)
        recent = profile * self._recent_factor(rows, origin, horizon)
        return profile, profile * self._city_level(origin), recent

    def _profile_at(self, rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray) -> np.ndarray:
        """The seasonal profile of each row's target hour over all weeks before it (0 unknown)."""
        return np.nan_to_num(self.derived.profile[rows, origin + horizon - 1])

    def _city_level(self, origin: np.ndarray) -> np.ndarray:
        """The city's actual/profile ratio over the week before each origin."""
        return city_ratio(self.derived, origin, np.maximum(origin - HOURS_PER_WEEK, 0))

    def pooled_means(
        self,
        rows: np.ndarray,
        origin: np.ndarray,
        horizon: np.ndarray,
        weeks: float,
        adjacent: float = 0.0,
    ) -> np.ndarray:
        """The recent level (this forecaster's weights) on the profile pooled with the cell's
        adjacent hours at ``adjacent`` weeks and its neighbours at ``weeks`` (both 0: the
        recent-level baseline)."""
        origin, horizon = np.asarray(origin), np.asarray(horizon)
        pooled = self.neighbourhood.pooled_profile(
            rows, origin, origin + horizon - 1, weeks, adjacent
        )
        return pooled * self._recent_factor(rows, origin, horizon)

    def _recent_factor(
        self, rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray
    ) -> np.ndarray:
        """``recency.recent_factor`` of rows with this forecaster's weights per bucket."""
        weights = getattr(self, "recency_weights_", None) or [recency.DEFAULT_WEIGHTS] * len(
            HORIZON_BUCKETS
        )
        ratios = recency.log_ratios(self.derived, rows, origin)
        return recency.recent_factor(ratios, bucket_values(horizon, weights))

    def quantiles(
        self, mean: np.ndarray, horizon: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P10, P50, P90 of mean forecasts: each horizon bucket's size and median rule."""
        mean, bucket = np.asarray(mean, dtype=float), bucket_index(np.asarray(horizon))
        out = np.zeros((3, len(mean)))
        for index in np.unique(bucket):
            part = bucket == index
            out[:, part] = interval(mean[part], *self.bucket_distribution(int(index)))
        return out[0], out[1], out[2]

    def bucket_distribution(self, index: int) -> tuple[float | None, str]:
        """The negative-binomial size (None = Poisson) and median rule of a horizon bucket
        (Poisson before any is chosen)."""
        size, rules = getattr(self, "size_", None), getattr(self, "median_rule_", None)
        size = size[index] if isinstance(size, list) else size
        return size, rules[index] if rules else "negative_binomial"

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Mean forecast of query rows (timestamp, lat, lon), as ``mlflow.sklearn`` calls it."""
        cells = h3_cells(X[EVENT_LAT], X[EVENT_LON], self.resolution)
        return self.predict_pairs(cells, utc_hour_ns(X[EVENT_TIME]))["mean"]

    def _regress(self, features: np.ndarray) -> np.ndarray:
        """The regressor's ratio; small inputs through the all-trees-at-once numpy path."""
        ensemble = tree_ensemble(self.regressor_)
        if ensemble is None or len(features) > SMALL_INPUT_ROWS:
            return self.regressor_.predict(features)
        return ensemble.link_inverse(predict_ensemble(ensemble, features))

    def serving_rows(
        self, cells: np.ndarray, hours_ns: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, origin, horizon) of served (cell, hour) pairs.

        A future hour is forecast from the end of the known counts; one more than a week ahead
        gets the week-ahead forecast of the same hour of the week. A known hour gets the
        one-hour-ahead forecast from just before it.
        """
        end = self.history_.hours
        position = self.history_.positions(hours_ns)
        ahead = position >= end
        week_ahead = end + (position - end) % HOURS_PER_WEEK
        target = np.where(ahead, week_ahead, np.maximum(position, 1))
        origin = np.where(ahead, end, target)
        return self.history_.rows(cells), origin, target - origin + 1

    def predict_pairs(self, cells: np.ndarray, hours_ns: np.ndarray) -> dict[str, np.ndarray]:
        """Mean and P10/P50/P90 of (uint64 cell, UTC hour in int64 ns) pairs."""
        rows, origin, horizon = self.serving_rows(cells, hours_ns)
        mean = np.clip(self.predict_rows(rows, origin, horizon), 0.0, None)
        p10, p50, p90 = self.quantiles(mean, horizon)
        return {"mean": mean, HORIZON: horizon, "p10": p10, "p50": p50, "p90": p90}

    # ---------------------------------------------------------------- history and intervals
    def with_counts(self, counts: pd.DataFrame, end: pd.Timestamp) -> BusynessForecaster:
        """A copy that also knows ``counts`` (``cell, hour, busyness``) up to ``end``; no refit."""
        extended = copy.copy(self)
        extended.history_ = self.history_.extended(counts, int(pd.Timestamp(end).value))
        extended._derived = extended._neighbourhood = None
        return extended


def bucket_index(horizon: np.ndarray) -> np.ndarray:
    """Index of each horizon's bucket in ``HORIZON_BUCKETS`` (past the last: the last)."""
    edges = np.asarray([high for _, high in HORIZON_BUCKETS[:-1]])
    return np.searchsorted(edges, horizon, side="left")


def bucket_values(horizon: np.ndarray, values: Sequence[Any]) -> np.ndarray:
    """The value (row) of each horizon's bucket (``HORIZON_BUCKETS``; past the last: the last's)."""
    return np.asarray(values, dtype=float)[bucket_index(horizon)]


def combine(
    weight: np.ndarray,
    learned: np.ndarray,
    plain: np.ndarray,
    level: np.ndarray,
    recent: np.ndarray,
) -> np.ndarray:
    """``weight`` (rows x ``BLEND_COMPONENTS``) of learned, level-adjusted and recent-level
    means, the plain profile taking the rest of 1."""
    weight = np.atleast_2d(weight)
    rest = 1.0 - weight.sum(axis=1)
    return weight[:, 0] * learned + weight[:, 1] * level + weight[:, 2] * recent + rest * plain


def _cell_matrix(
    cells: np.ndarray, cell_features: BusynessFeatures, exclude: Sequence[str]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Per-cell reference features of ``cells`` (+ a row for unseen cells), leaving out any the
    source cannot give (all NaN: e.g. restaurant distances of a ride table)."""
    known = set(cell_features.feature_names_) - set(exclude)
    wanted = [name for name in CELL_FEATURES if name in known]
    columns = (
        cell_features.feature_columns(cells, np.zeros(len(cells), np.int64)) if len(cells) else {}
    )
    matrix = np.full((len(cells) + 1, len(wanted)), np.nan)
    for j, name in enumerate(wanted):
        matrix[:-1, j] = columns.get(name, np.nan)
    if "h3_index" in wanted:
        matrix[-1, wanted.index("h3_index")] = UNSEEN_CELL
    usable = [j for j in range(len(wanted)) if np.isfinite(matrix[:-1, j]).any()]
    left_out = sorted(set(wanted) - {wanted[j] for j in usable})
    if left_out:
        logger.info("Cell features left out (the source does not give them): %s", left_out)
    return tuple(wanted[j] for j in usable), matrix[:, usable]


def training_rows(
    derived: DerivedHistory, end: int, max_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled (row, origin, horizon) with every target before ``end``: hourly origins for
    1-3 h ahead, local-midnight origins for 1-168 h ahead (the three products' rows)."""
    hourly = np.arange(MIN_ORIGIN, end)
    midnights = hourly[derived.calendar["hour"][hourly] == 0]
    nowcast = horizon_pairs(hourly, np.full(len(hourly), 3), end)
    week = horizon_pairs(midnights, np.full(len(midnights), HOURS_PER_WEEK), end)
    origin, horizon = (np.concatenate(parts) for parts in zip(nowcast, week, strict=True))
    cells = len(derived.history.cells)
    total = len(origin) * cells
    rng = np.random.default_rng(seed)
    pick = rng.choice(total, min(max_rows, total), replace=False) if total else np.empty(0, int)
    return pick % cells, origin[pick // cells], horizon[pick // cells]


def horizon_pairs(
    origins: np.ndarray, lengths: np.ndarray, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """(origin, horizon) pairs: horizons 1..length from each origin, targets before ``end``."""
    origin = np.repeat(origins, lengths)
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    horizon = np.arange(len(origin)) - first + 1
    keep = origin + horizon - 1 < end
    return origin[keep], horizon[keep]
