"""The prediction shortcuts give the very numbers of the long way: level ratios once per
(cell, origin) run, the recent level only where a blend weighs it, pooling parts shared by a
grid of prior weights, the design matrix filled column by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model import recency
from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.features import BusynessFeatures, cell_feature_params
from geo_busyness.model.forecaster import BusynessForecaster, bucket_values, combine
from geo_busyness.model.history import CountHistory, DerivedHistory, history_from_counts
from geo_busyness.model.origin_features import (
    ORIGIN_FEATURES,
    origin_features,
    origin_runs,
    per_origin,
)
from geo_busyness.model.pooling import ADJACENT_WEEKS, POOL_WEEKS, NeighbourhoodSums
from geo_busyness.schemas import CELL
from tests.model.test_forecaster import CELL_PARAMS, CENTRES, START, TZ
from tests.model.test_pooling import _shared_shape_history
from tests.point_events import place_events


@pytest.fixture(scope="module")
def history_and_features() -> tuple[CountHistory, BusynessFeatures]:
    """Four weeks of Poisson counts at three places."""
    rng = np.random.default_rng(3)
    hours = pd.date_range(START, periods=4 * 168, freq="h")
    events = pd.concat(
        [
            place_events(hours, rng.poisson(1.0 + i, len(hours)), (lat, lon, i), rng)
            for i, (lat, lon) in enumerate(CENTRES)
        ],
        ignore_index=True,
    )
    counts = count_cell_hours(events, 7)
    end = START + pd.Timedelta(weeks=4)
    history = history_from_counts(counts, np.unique(counts[CELL]), START, end, TZ)
    return history, BusynessFeatures(**cell_feature_params(CELL_PARAMS)).fit(events)


@pytest.fixture(scope="module")
def history(history_and_features) -> CountHistory:
    return history_and_features[0]


@pytest.fixture(scope="module")
def gbm(history_and_features) -> BusynessForecaster:
    return BusynessForecaster(
        method="gradient_boosting",
        regressor_params={"max_iter": 20, "max_depth": 3, "min_samples_leaf": 20},
    ).fit(*history_and_features)


def _table_rows(history: CountHistory, seed: int) -> tuple[np.ndarray, ...]:
    """Backtest-like rows: every cell x a few origins x horizons 1..30, one run per (cell,
    origin)."""
    rng = np.random.default_rng(seed)
    origins = rng.integers(2 * 168, history.hours, 5)
    cells = np.arange(len(history.cells) + 1)  # the unseen-cell row too
    rows = np.repeat(cells, len(origins) * 30)
    origin = np.tile(np.repeat(origins, 30), len(cells))
    horizon = np.tile(np.arange(1, 31), len(cells) * len(origins))
    return rows, origin, horizon


def test_runs_start_where_the_cell_or_the_origin_changes():
    rows = np.array([0, 0, 0, 1, 1, 1, 1])
    origin = np.array([5, 5, 6, 6, 6, 5, 5])
    np.testing.assert_array_equal(origin_runs(rows, origin), [0, 2, 3, 5])
    assert len(origin_runs(rows[:0], origin[:0])) == 0


def test_ratios_computed_once_per_run_equal_those_of_every_row(history):
    derived = DerivedHistory(history)
    rows, origin, _ = _table_rows(history, seed=1)
    calls = []

    def each(derived, rows, origin):
        calls.append(len(rows))
        return recency._log_ratios(derived, rows, origin)

    shared = per_origin(each, derived, rows, origin)
    assert calls == [len(origin_runs(rows, origin))] and calls[0] * 30 == len(rows)
    np.testing.assert_array_equal(shared, recency._log_ratios(derived, rows, origin))
    # Shuffled rows (no runs) take the long way, with the same answers.
    order = np.random.default_rng(2).permutation(len(rows))
    np.testing.assert_array_equal(
        recency.log_ratios(derived, rows[order], origin[order]), shared[order]
    )


def test_origin_features_are_the_same_whatever_the_row_order(history):
    derived = DerivedHistory(history)
    rows, origin, horizon = _table_rows(history, seed=3)
    order = np.random.default_rng(4).permutation(len(rows))
    kwargs = {"shrink_weeks": 4.0, "holidays": np.array([])}
    grouped = origin_features(derived, rows, origin, horizon, **kwargs)
    shuffled = origin_features(derived, rows[order], origin[order], horizon[order], **kwargs)
    assert tuple(grouped) == ORIGIN_FEATURES
    for name in ORIGIN_FEATURES:
        np.testing.assert_array_equal(grouped[name][order], shuffled[name], err_msg=name)


@pytest.mark.parametrize("recent_weights", [[0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.2, 0.2, 0.5]])
def test_a_blend_reads_the_recent_level_only_where_it_weighs_it(gbm, recent_weights):
    model = BusynessForecaster.__new__(BusynessForecaster)
    model.__setstate__(gbm.__getstate__())
    model.recency_weights_ = [[0.25, 0.25, 0.25, 0.25]] * 3
    model.blend_weights_ = [[0.5, 0.25, recent_weights[0]], [0.5, 0.0, recent_weights[1]]]
    model.blend_weights_.append([0.25, 0.25, recent_weights[2]])
    rows, origin, horizon = _table_rows(model.history_, seed=5)
    horizon = horizon * 5  # every bucket
    plain, level, recent = model.baseline_means(rows, origin, horizon)
    features, base = model.design(rows, origin, horizon)
    learned = base * model.regressor_.predict(features)
    expected = combine(bucket_values(horizon, model.blend_weights_), learned, plain, level, recent)
    np.testing.assert_array_equal(model.predict_rows(rows, origin, horizon), expected)


def test_the_design_matrix_holds_each_feature_in_its_column(gbm):
    rows, origin, horizon = _table_rows(gbm.history_, seed=6)
    matrix, _ = gbm.design(rows, origin, horizon)
    features = origin_features(
        gbm.derived,
        rows,
        origin,
        horizon,
        shrink_weeks=gbm.shrink_weeks,
        holidays=gbm.holiday_days_,
    )
    columns = [features[name] for name in gbm.origin_feature_names_]
    expected = np.column_stack([*columns, gbm._cell_matrix_[rows]])
    assert matrix.shape == (len(rows), len(gbm.feature_names_))
    np.testing.assert_array_equal(matrix, expected)


def test_pooling_parts_give_every_grid_point_the_pooled_profile():
    shared, _ = _shared_shape_history(weeks=4, seed=7)
    sums = NeighbourhoodSums(DerivedHistory(shared))
    rng = np.random.default_rng(8)
    rows = rng.integers(0, len(shared.cells) + 1, 500)
    origin = rng.integers(1, shared.hours, 500)
    target = origin + rng.integers(0, 168, 500)
    parts = sums.pooling_parts(rows, origin, target)
    for weeks in POOL_WEEKS:
        for adjacent in ADJACENT_WEEKS:
            np.testing.assert_array_equal(
                parts.pooled(weeks, adjacent),
                sums.pooled_profile(rows, origin, target, weeks, adjacent),
            )
    own_only = sums.pooling_parts(rows, origin, target, adjacent=False, neighbours=False)
    with pytest.raises(ValueError, match="without the adjacent hours"):
        own_only.pooled(0.0, 1.0)
    with pytest.raises(ValueError, match="without the neighbourhood"):
        own_only.pooled(1.0, 0.0)
