"""Choosing among the candidates: simpler forecasters serve unless a more complex one is
clearly better on validation."""

from __future__ import annotations

import pytest

from geo_busyness.pipelines.modeling.candidates import _choose

BASELINES = ["seasonal_naive", "level_adjusted", "recent_level"]
MARGIN = 0.005


def _average(pooled: float, learned: float) -> dict[str, float]:
    """Validation losses: the recent level best of the baselines at 0.90."""
    return {
        "seasonal_naive": 1.0,
        "level_adjusted": 0.95,
        "recent_level": 0.90,
        "pooled_level": pooled,
        "gradient_boosting": learned,
    }


@pytest.mark.parametrize(
    ("pooled", "learned", "chosen"),
    [
        (0.85, 0.849, "pooled_level"),  # learned ahead of the pooled level by 0.1%: noise
        (0.85, 0.84, "gradient_boosting"),  # by 1.2%: chosen
        (0.899, 0.85, "gradient_boosting"),  # the pooled level not chosen; learned beats recent
        (0.899, 0.898, "recent_level"),  # neither clearly beats the best baseline
        (0.85, 0.95, "pooled_level"),
    ],
)
def test_each_step_up_in_complexity_must_beat_what_serves_below_it(pooled, learned, chosen):
    assert _choose(_average(pooled, learned), BASELINES, MARGIN) == chosen


def test_a_baseline_must_beat_the_seasonal_naive_by_the_margin():
    average = {"seasonal_naive": 1.0, "level_adjusted": 0.998, "recent_level": 0.999}
    assert _choose(average, BASELINES, MARGIN) == "seasonal_naive"


def test_a_learned_model_must_lose_no_validation_fold_to_what_it_replaces():
    average = _average(0.85, 0.84)  # learned ahead of the pooled level by 1.2% on average
    mixed = {"pooled_level": [0.70, 1.00], "gradient_boosting": [0.72, 0.96]}
    steady = {"pooled_level": [0.70, 1.00], "gradient_boosting": [0.69, 0.99]}
    assert _choose(average, BASELINES, MARGIN, mixed) == "pooled_level"
    assert _choose(average, BASELINES, MARGIN, steady) == "gradient_boosting"
    assert _choose(average, BASELINES, MARGIN) == "gradient_boosting"  # one fold: the average
