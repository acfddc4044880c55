"""The predictive distribution: exact fast Poisson quantiles, the dispersion fit, the P50 rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from geo_busyness.model.distribution import (
    best_median_rule,
    count_quantiles,
    fit_size,
    interval,
    medians,
    pit_coverage,
    poisson_quantile,
)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_the_fast_poisson_quantile_is_scipys_exactly(q):
    mean = np.concatenate(
        [np.random.default_rng(1).gamma(0.4, 3.0, 50_000), [1e-9, 0.5, np.log(2), 1.0, 250.0]]
    )
    np.testing.assert_array_equal(poisson_quantile(mean, q), stats.poisson.ppf(q, mean))


def test_intervals_fitted_by_likelihood_widen_for_overdispersed_counts():
    rng = np.random.default_rng(0)
    mean = rng.uniform(0.5, 20, 20_000)
    poisson, overdispersed = rng.poisson(mean), rng.negative_binomial(2.0, 2.0 / (2.0 + mean))
    assert fit_size(overdispersed, mean) == pytest.approx(2.0, rel=0.35)
    size = fit_size(poisson, mean)
    assert size is None or size > 50
    low, high = count_quantiles(mean, 2.0, 0.1), count_quantiles(mean, 2.0, 0.9)
    assert 0.78 < np.mean((overdispersed >= low) & (overdispersed <= high)) < 0.95


def test_the_p50_rule_beats_the_negative_binomial_median_on_a_sparse_poisson_panel():
    """A sparse Poisson panel (means 0.75-1.5) with rare bursts (5% of cell-hours at 10x): the
    bursts make the likelihood pick a wide negative binomial, whose median of such means is
    often 0, while most cell-hours are plain Poisson with median 1. The rule chosen on the rows
    is the Poisson median, with a clearly lower absolute error."""
    rng = np.random.default_rng(3)
    mean = rng.uniform(0.75, 1.5, 200_000)
    burst = rng.random(len(mean)) < 0.05
    y = rng.poisson(np.where(burst, mean * 10, mean))
    size = fit_size(y, mean)
    assert size is not None and size < 2
    nb_median = interval(mean, size, "negative_binomial")[1]
    rule = best_median_rule(y, mean, size)
    chosen = interval(mean, size, rule)[1]
    assert rule == "poisson"
    assert np.mean(np.abs(y - chosen)) < 0.97 * np.mean(np.abs(y - nb_median))


def test_the_median_rule_keeps_the_negative_binomial_where_it_scores_better():
    """A forecast that knows the mean only roughly (log-sd 0.8): the negative binomial's wider
    median is the better P50 there, and the rule keeps it."""
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.75, 1.5, 200_000)
    mean = truth * rng.lognormal(-0.32, 0.8, len(truth))
    y = rng.poisson(truth)
    assert best_median_rule(y, mean, fit_size(y, mean)) == "negative_binomial"


def test_the_p50_stays_inside_the_interval():
    mean = np.linspace(0.01, 30, 500)
    p10, p50, p90 = interval(mean, 0.3, "poisson")
    assert (p10 <= p50).all() and (p50 <= p90).all()


def test_a_calibrated_poisson_forecast_covers_eighty_percent():
    rng = np.random.default_rng(42)
    mean = rng.uniform(0.5, 5, 5000)
    assert 0.77 < pit_coverage(rng.poisson(mean), mean, None) < 0.83


@pytest.mark.parametrize("size", [0.3, 2.0, 40.0, None])
def test_each_rules_median_is_the_intervals_own(size):
    """``medians`` (P10/P90 computed once for both rules) gives each rule's P50 exactly as
    ``interval`` does."""
    mean = np.random.default_rng(3).gamma(0.6, 2.0, 5000)
    for rule, p50 in medians(mean, size).items():
        assert np.array_equal(p50, interval(mean, size, rule)[1]), rule
