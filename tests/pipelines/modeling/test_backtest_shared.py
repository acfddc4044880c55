"""Work the backtest shares: each distinct (cell, origin, horizon) predicted once, each fold's
MAE and RMSE read from the pooled score's own quantiles, a bucket's sampled columns kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.backtest import backtest_means, score
from geo_busyness.pipelines.modeling.selection import BucketRows

START = pd.Timestamp("2026-01-05T06:00:00Z")  # local midnight in Regina


def test_each_distinct_pair_is_predicted_once_and_lands_on_its_own_rows():
    cells, hours = 3, 24 * 21
    model = BusynessForecaster(method="seasonal_naive")
    model.history_ = CountHistory(
        np.arange(1, cells + 1, dtype=np.uint64),
        START.value,
        np.random.default_rng(0).poisson(2.0, (cells, hours)).astype(np.float32),
        "America/Regina",
    )
    asked = []

    def positions(rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray) -> np.ndarray:
        asked.append(len(rows))
        return rows * 1e6 + origin * 1e3 + horizon

    start, end = 24 * 14 + 5, 24 * 21  # a window starting off midnight
    means = backtest_means({"seasonal_naive": model}, start, end, {"positions": positions})
    for table in means.values():
        expected = table["row"] * 1e6 + table["origin"] * 1e3 + table["horizon_hours"]
        np.testing.assert_array_equal(table["positions"].to_numpy(), expected.to_numpy())
    pairs = pd.concat(means.values())[["row", "origin", "horizon_hours"]]
    assert sum(asked) == len(pairs.drop_duplicates()) < len(pairs)
    # Day-ahead rows are the week-ahead's first hours: the same forecasts.
    day, week = means["day_ahead"], means["week_ahead"]
    both = day.merge(week, on=["row", "origin", "horizon_hours"], suffixes=("", "_week"))
    assert len(both) == len(day)
    np.testing.assert_array_equal(both["seasonal_naive"], both["seasonal_naive_week"])


def test_each_folds_mae_and_rmse_are_those_of_the_fold_scored_alone():
    rng = np.random.default_rng(3)
    n = 6000
    mean = rng.uniform(0.2, 6, n)
    table = pd.DataFrame(
        {
            "horizon_hours": rng.integers(1, 169, n),
            "day": rng.integers(0, 14, n),
            "fold": rng.integers(0, 2, n),
            "actual": rng.poisson(mean),
            "model": mean * rng.uniform(0.8, 1.2, n),
            "seasonal_naive": mean * 1.3,
        }
    )
    poisson = BusynessForecaster()
    forecasters = {"model": poisson, "seasonal_naive": poisson}
    by_fold: dict = {}
    pooled = score({"week_ahead": table}, forecasters, "seasonal_naive", by_fold)
    assert pooled == score({"week_ahead": table}, forecasters, "seasonal_naive")
    assert sorted(by_fold) == [0, 1]
    for k, entries in by_fold.items():
        alone = score({"week_ahead": table[table["fold"] == k]}, forecasters, "seasonal_naive")
        assert entries == [
            {name: {"mae": row[name]["mae"], "rmse": row[name]["rmse"]} for name in forecasters}
            for row in alone
        ]


def test_a_bucket_keeps_its_sampled_columns_read_only_per_table():
    pooled = pd.DataFrame(
        {
            "horizon_hours": np.tile([1, 2, 30], 4),
            "product": np.repeat(["nowcast", "week_ahead"], 6),
            "actual": np.arange(12.0),
            "day": np.zeros(12, int),
            "model": np.arange(12.0) / 2,
        }
    )
    rows = BucketRows(pooled, 0, seed=0)
    assert rows.column(pooled, "model") is rows.column(pooled, "model")
    with pytest.raises(ValueError, match="read-only"):
        rows.column(pooled, "model")[0] = 1.0
    other = pooled.assign(model=pooled["model"] + 1)
    np.testing.assert_array_equal(rows.column(other, "model"), rows.column(pooled, "model") + 1)
