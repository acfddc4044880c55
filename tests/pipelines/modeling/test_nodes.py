"""Modeling nodes on tiny inputs: the gate's rule and the backtest's products and scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.backtest import pit_coverage, product_pairs, score
from geo_busyness.pipelines.modeling.nodes import gate_decision

START = pd.Timestamp("2026-01-05T06:00:00Z")  # local midnight in Regina


def _forecaster(hours: int) -> BusynessForecaster:
    """An unfitted forecaster holding an empty history (enough for the calendar)."""
    model = BusynessForecaster()
    model.history_ = CountHistory(
        np.array([1], dtype=np.uint64),
        START.value,
        np.zeros((1, hours), np.float32),
        "America/Regina",
    )
    return model


def _row(skill: float, product: str = "day_ahead") -> dict:
    return {
        "product": product,
        "bucket": "4-24h",
        "model": {"mae": 1.0 - skill, "skill_mae": skill},
        "seasonal_naive": {"mae": 1.0},
    }


def test_the_gate_needs_r2_and_skill_in_every_bucket():
    passing = {"model": {"r2": 0.7}, "backtest": [_row(0.05), _row(0.01, "nowcast")]}
    assert gate_decision(passing, 0.6) == (True, [])
    low_r2 = {**passing, "model": {"r2": 0.5}}
    assert gate_decision(low_r2, 0.6)[1] == ["test R2 0.5000 < min_r2 0.6"]
    one_bucket = {**passing, "backtest": [_row(0.05), _row(0.0, "nowcast")]}
    passed, reasons = gate_decision(one_bucket, 0.6)
    assert not passed and reasons[0].startswith("nowcast 4-24h: MAE 1.0000 does not beat")


def test_day_ahead_rows_hold_every_window_hour_once_from_its_latest_midnight():
    model = _forecaster(24 * 30)
    start, end = 24 * 14 + 5, 24 * 21 + 3  # starts at 05:00 local, ends at 03:00
    pairs = product_pairs(model, start, end)
    origin, horizon = pairs["day_ahead"]
    target = origin + horizon - 1
    assert sorted(target.tolist()) == list(range(start, end))
    assert set(origin.tolist()) == {start, *range(24 * 15, end, 24)}
    now_origin, now_horizon = pairs["nowcast"]
    assert set(now_horizon.tolist()) == {1, 2, 3} and (now_origin + now_horizon - 1 < end).all()
    week_origin, week_horizon = pairs["week_ahead"]
    assert week_horizon.max() <= 168 and (week_origin + week_horizon - 1 < end).all()


def test_scores_compare_like_with_like_on_the_same_rows():
    rng = np.random.default_rng(42)  # not pit_coverage's own seed (0): independent draws
    mean = rng.uniform(0.5, 5, 5000)
    table = pd.DataFrame(
        {
            "horizon_hours": rng.integers(1, 169, 5000),
            "actual": rng.poisson(mean),
            "model": mean,
            "seasonal_naive": mean * 1.5,
        }
    )
    rows = score({"week_ahead": table}, {"model": None, "seasonal_naive": None}, "seasonal_naive")
    assert [row["bucket"] for row in rows] == ["1-3h", "4-24h", "25-168h"]
    for row in rows:
        assert row["model"]["skill_mae"] > 0 and row["model"]["skill_rmse"] > 0
        assert (
            row["rows"]
            == sum(
                (table["horizon_hours"] >= lo) & (table["horizon_hours"] <= hi)
                for lo, hi in [tuple(int(x) for x in row["bucket"][:-1].split("-"))]
            ).sum()
        )
    # A calibrated Poisson forecast's randomised PIT covers ~80% in [0.1, 0.9].
    assert 0.77 < pit_coverage(table["actual"].to_numpy(), mean, None) < 0.83
