"""Modeling nodes on tiny inputs: the gate's rule and the backtest's products and scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.backtest import backtest_means, product_pairs, score
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


GATE = {"min_r2": 0.6, "gate_noise_z": 2.0, "gate_min_bucket_rows": 1000}


def _row(skill: float, product: str = "day_ahead", noise: float = 0.01, rows: int = 5000) -> dict:
    same = skill == 0.0 and noise == 0.0
    return {
        "product": product,
        "bucket": "4-24h",
        "rows": rows,
        "model": {"mae": 1.0 - skill, "skill_mae": skill, "skill_noise": noise, "same_p50": same},
        "seasonal_naive": {"mae": 1.0},
    }


def _metrics(*rows: dict, r2: float = 0.7, headline_mae: float = 0.9, method: str = "x") -> dict:
    return {
        "model": {"r2": r2, "mae": headline_mae},
        "seasonal_naive_baseline": {"mae": 1.0},
        "model_method": method,
        "backtest": list(rows),
    }


def test_the_gate_needs_r2_headline_skill_and_no_bucket_worse_beyond_its_noise():
    assert gate_decision(_metrics(_row(0.05), _row(0.01, "nowcast")), GATE) == (True, [])
    assert gate_decision(_metrics(_row(0.05), r2=0.5), GATE)[1] == ["test R2 0.5000 < min_r2 0.6"]
    # Worse than the naive, but within two standard errors of its skill: not a failure.
    assert gate_decision(_metrics(_row(0.05), _row(-0.015, "nowcast", noise=0.01)), GATE)[0]
    passed, reasons = gate_decision(_metrics(_row(0.05), _row(-0.03, "nowcast")), GATE)
    assert not passed and reasons[0].startswith("nowcast 4-24h: MAE 1.0300 worse than")
    # Not better on the headline product.
    passed, reasons = gate_decision(_metrics(_row(0.05), headline_mae=1.0), GATE)
    assert not passed and reasons[0].startswith("day_ahead: P50 MAE 1.0000 does not beat")


def test_ties_and_thin_buckets_cannot_fail_the_gate():
    night_tie = _row(0.0, "day_ahead", noise=0.0)
    thin = _row(-0.5, "week_ahead", rows=36)
    metrics = _metrics(_row(0.05), night_tie, thin)
    assert gate_decision(metrics, GATE) == (True, [])
    assert [row["model"]["gate"] for row in metrics["backtest"]] == [
        "ok",
        "not judged",
        "not judged",
    ]


def test_the_seasonal_naive_chosen_as_the_model_passes_with_nothing_to_beat():
    tie = _row(0.0, noise=0.0)
    assert gate_decision(_metrics(tie, headline_mae=1.0, method="seasonal_naive"), GATE)[0]
    assert not gate_decision(_metrics(tie, headline_mae=1.0, method="recent_level"), GATE)[0]


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
    rng = np.random.default_rng(42)
    mean = rng.uniform(0.5, 5, 5000)
    table = pd.DataFrame(
        {
            "horizon_hours": rng.integers(1, 169, 5000),
            "day": rng.integers(0, 7, 5000),
            "actual": rng.poisson(mean),
            "model": mean,
            "seasonal_naive": mean * 1.5,
        }
    )
    poisson = BusynessForecaster()
    rows = score(
        {"week_ahead": table}, {"model": poisson, "seasonal_naive": poisson}, "seasonal_naive"
    )
    assert [row["bucket"] for row in rows] == ["1-3h", "4-24h", "25-168h"]
    for row in rows:
        assert row["model"]["skill_mae"] > 0 and row["model"]["skill_rmse"] > 0
        assert 0 < row["model"]["skill_noise"] < row["model"]["skill_mae"]
        low, high = (int(x) for x in row["bucket"][:-1].split("-"))
        assert row["rows"] == int(table["horizon_hours"].between(low, high).sum())
    assert 0.77 < rows[2]["model"]["pit_coverage_80"] < 0.83


def test_a_dst_fall_back_day_stays_one_day_ahead_bucket():
    """2 Nov 2014 in Los Angeles has 25 hours: its day-ahead rows run to horizon 25, all in
    the 4-24h bucket (the local day), never a 25-168h day-ahead bucket."""
    start = pd.Timestamp("2014-10-27T07:00:00Z")  # local midnight, Monday 27 Oct
    model = BusynessForecaster(method="seasonal_naive")
    model.history_ = CountHistory(
        np.array([1], dtype=np.uint64),
        start.value,
        np.ones((1, 24 * 14), np.float32),
        "America/Los_Angeles",
    )
    means = backtest_means({"model": model, "seasonal_naive": model}, 24 * 5, 24 * 5 + 168)
    day_ahead = means["day_ahead"]
    assert day_ahead["horizon_hours"].max() == 25
    rows = score(
        {"day_ahead": day_ahead}, {"model": model, "seasonal_naive": model}, "seasonal_naive"
    )
    assert [row["bucket"] for row in rows] == ["1-3h", "4-24h"]
    assert sum(row["rows"] for row in rows) == len(day_ahead) == 168
