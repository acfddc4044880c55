"""The level check: a count total against an expectation, with day-level noise in its variance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from geo_busyness.model.cell_hours import HOURS_PER_WEEK
from geo_busyness.pipelines.data_generation.city import ar1
from geo_busyness.pipelines.monitoring.decision import level_checks
from geo_busyness.pipelines.monitoring.level import (
    compare_level,
    day_level_spread,
    judge_level,
    level_test,
    prediction_bias,
    window_variance_factor,
)
from geo_busyness.pipelines.monitoring.nodes import (
    extend_monitored_model,
    score_recent_cell_hours,
)
from geo_busyness.pipelines.monitoring.report_html import level_section as level_html
from geo_busyness.schemas import EVENT_TIME
from tests.serving.model_fixture import END, START, fit_model, synthetic_events

#: Expected events per day, and the day-level noise of the constructed city (log-sd, AR(1)):
#: a week's total then varies by about 4% (the generator's city by about 13%; see the README).
DAILY = 1000.0
SIGMA, PERSISTENCE = 0.08, 0.3
#: A week's window after four weeks of history.
WEEK_AFTER_FOUR = {"days": 7, "history_days": 28}
PARAMS = {"thresholds": {"level_change": 0.15, "level_p_value": 0.1, "prediction_bias": 0.4}}


#: A weekday shape (Monday first) that the day-level spread must not mistake for noise.
WEEKDAY = np.array([0.8, 0.9, 0.9, 1.0, 1.2, 1.3, 0.9])


def noisy_days(days: int, seed: int, level: float = 1.0) -> np.ndarray:
    """Poisson daily totals around ``DAILY * level`` times the weekday shape, with AR(1)
    lognormal day shocks (day 0 a Monday)."""
    rng = np.random.default_rng(seed)
    shock = np.exp(SIGMA * ar1(rng.standard_normal(days), PERSISTENCE) - SIGMA**2 / 2)
    return rng.poisson(DAILY * level * WEEKDAY[np.arange(days) % 7] * shock).astype(float)


def spread_of(days: int, seed: int) -> dict:
    """The day-level spread of ``days`` constructed history days."""
    return day_level_spread(noisy_days(days, seed), np.arange(days) % 7)


def test_window_variance_factor():
    assert window_variance_factor(0.0, 7) == pytest.approx(1 / 7)
    assert window_variance_factor(0.0, 1) == 1.0
    # persistent days average out less: 1 + 2 * (6/7 * 0.6 + 5/7 * 0.36 + ...) over 7
    expected = (1 + 2 * sum((1 - k / 7) * 0.6**k for k in range(1, 7))) / 7
    assert window_variance_factor(0.6, 7) == pytest.approx(expected)
    assert window_variance_factor(0.6, 7.04) == pytest.approx(expected)  # a week and an hour
    assert window_variance_factor(0.99, 7) == pytest.approx(1.0, abs=0.03)


def test_day_level_spread_recovers_the_noise_of_constructed_days():
    spread = spread_of(1000, seed=0)
    assert spread["days"] == 1000
    day_variance = SIGMA**2 + 1 / DAILY  # shocks and Poisson noise
    assert spread["sd"] == pytest.approx(np.sqrt(day_variance), rel=0.1)
    assert spread["persistence"] == pytest.approx(PERSISTENCE * SIGMA**2 / day_variance, abs=0.1)
    # the weekday shape is not noise; a handful of days gives no spread
    flat = day_level_spread(np.tile(DAILY * WEEKDAY, 4), np.arange(28) % 7)
    assert flat["sd"] == pytest.approx(0.0, abs=1e-12) and flat["persistence"] == 0.0
    assert spread_of(9, seed=0)["sd"] is None


@pytest.mark.parametrize("seed", range(5))
def test_a_20_percent_level_change_fires_and_a_noisy_unchanged_week_does_not(seed):
    """Four weeks of history give the day-level spread; the same recent week's noise at the
    expected level, 20% above it and 20% below."""
    spread = spread_of(28, seed=100 + seed)
    week = noisy_days(7, seed=seed)
    expected = 7 * DAILY * WEEKDAY.mean()
    unchanged = level_test(week.sum(), expected, expected, spread=spread, **WEEK_AFTER_FOUR)
    raised = level_test(1.2 * week.sum(), expected, expected, spread=spread, **WEEK_AFTER_FOUR)
    lowered = level_test(0.8 * week.sum(), expected, expected, spread=spread, **WEEK_AFTER_FOUR)
    assert not judge_level(unchanged, 0.15, 0.1)
    assert judge_level(raised, 0.15, 0.1)
    assert raised["relative_change"] == pytest.approx(0.2 + 1.2 * unchanged["relative_change"])
    assert judge_level(lowered, 0.15, 0.1)
    assert lowered["relative_change"] < -0.15


def test_a_plain_poisson_test_would_fire_on_the_unchanged_noisy_week():
    """What the day-level variance is for: day shocks move a week's total far more than
    Poisson noise does, so a Poisson test calls an ordinary week significant."""
    spread = spread_of(28, seed=7)
    week = noisy_days(7, seed=3)
    expected = 7 * DAILY * WEEKDAY.mean()
    poisson_p = 2 * stats.norm.sf(abs(week.sum() - expected) / np.sqrt(expected))
    assert poisson_p < 0.01
    result = level_test(week.sum(), expected, expected, spread=spread, **WEEK_AFTER_FOUR)
    assert result["p_value"] > 0.1
    assert result["variance_day_level"] > 5 * result["variance_counts"]


def test_both_the_effect_and_the_significance_are_needed():
    certain = {"relative_change": 0.05, "p_value": 1e-9}
    large_but_noisy = {"relative_change": 0.4, "p_value": 0.3}
    assert not judge_level(certain, 0.15, 0.1)
    assert not judge_level(large_but_noisy, 0.15, 0.1)
    assert judge_level({"relative_change": -0.2, "p_value": 0.01}, 0.15, 0.1)


def test_prediction_bias():
    assert prediction_bias(np.array([1.0, 3.0]), np.array([2.0, 3.0])) == pytest.approx(-0.2)
    assert prediction_bias(np.zeros(3), np.zeros(3)) == 0.0


# ---------------------------------------------------------------- the node, on a small model
def recent_week(n_events: int) -> pd.DataFrame:
    """A week after the fixture model's history, same venues, ``n_events`` events."""
    week = synthetic_events(n_events, seed=0, weeks=1)
    return week.assign(**{EVENT_TIME: week[EVENT_TIME] + (END - START)})


def level_of(n_events: int) -> dict:
    model = fit_model()
    forecaster, origin = extend_monitored_model(model, synthetic_events(), recent_week(n_events))
    panel = score_recent_cell_hours(recent_week(n_events), forecaster)
    return compare_level(forecaster, origin, panel, PARAMS)


def test_the_node_compares_the_recent_total_with_the_models_profile():
    """The fixture's history has 2000 events a week; a recent week of 2000 is no change, 2600
    (30% more) fires the level check and names it."""
    same, more = level_of(2000), level_of(2600)
    level = same["level"]
    assert level["actual_total"] == 2000
    assert level["hours"] == HOURS_PER_WEEK
    assert sum(level["by_day"]["actual"]) == 2000
    assert level["expected_total"] == pytest.approx(sum(level["by_day"]["expected"]), rel=1e-6)
    assert level["expected_total"] == pytest.approx(2000, rel=0.1)
    assert abs(level["relative_change"]) < 0.1 and not level["fired"]
    assert level["day_level_spread"]["days"] >= 20
    assert more["level"]["relative_change"] == pytest.approx(0.3, abs=0.1)
    assert more["level"]["fired"] and more["level"]["p_value"] < 0.01
    assert more["level"]["expected_total"] == pytest.approx(level["expected_total"])
    check, bias = level_checks(more)
    assert check["fired"] and check["name"] == "level_change"
    assert check["reason"].startswith("level: recent window has 3")
    assert "% more events than the model expected (2,600 vs " in check["reason"]
    assert bias["name"] == "prediction_bias" and bias["reason"].startswith("bias: day-ahead ")
    assert more["bias"]["bias"] < same["bias"]["bias"]  # more actuals, the same forecasts a day on
    html = level_html(more["level"], more["bias"])
    assert "2,600 events vs" in html and html.count("<svg") == 1
    assert html.count("<rect") == 2 * len(more["level"]["by_day"]["day"])
