"""The fast negative-binomial quantile: ``stats.nbinom.ppf``'s answers, exact boundaries included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from geo_busyness.model import distribution
from geo_busyness.model.distribution import SIZES, count_quantiles, nbinom_quantile

#: Means from 1e-6 to 1e4, with the integers and half-integers where quantiles step.
MEANS = np.concatenate(
    [np.geomspace(1e-6, 1e4, 241), np.arange(0.5, 30.0, 0.5), [np.log(2), 0.8, 9.0]]
)


def _ppf(mean: np.ndarray, size: float, q: float) -> np.ndarray:
    return stats.nbinom.ppf(q, size, size / (size + np.maximum(mean, 1e-9)))


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_the_fast_negative_binomial_quantile_is_scipys_exactly(q):
    for size in SIZES[:-1]:
        np.testing.assert_array_equal(
            nbinom_quantile(MEANS, size, q), _ppf(MEANS, size, q), err_msg=f"size {size}"
        )


def test_a_level_exactly_at_a_cdf_step_gives_that_step():
    """q = cdf(k) to the last bit: the quantile is k (the least m with cdf(m) >= q)."""
    for size in SIZES[:-1:4]:
        for mean in (1e-3, 0.3, 1.0, 2.5, 7.0, 40.0, 900.0):
            p = size / (size + mean)
            for k in (0, 1, 2, 5, 20):
                q = float(special.betainc(size, k + 1, p))
                if not 0.0 < q < 1.0:
                    continue
                fast = nbinom_quantile(np.array([mean]), size, q)[0]
                assert fast == stats.nbinom.ppf(q, size, p), (size, mean, k, q)
                assert fast <= k


def test_geometric_boundaries_by_hand():
    """Size 1 is the geometric, cdf(k) = 1 - (1 - p) ** (k + 1): at p = 0.5 the median is 0
    (cdf(0) = 0.5 exactly), at p = 0.1 the P10 is 0 (cdf(0) = 0.1) and the P90 21."""
    assert nbinom_quantile(np.array([1.0]), 1.0, 0.5)[0] == 0.0
    assert nbinom_quantile(np.array([9.0]), 1.0, 0.1)[0] == 0.0
    assert nbinom_quantile(np.array([9.0]), 1.0, 0.9)[0] == stats.nbinom.ppf(0.9, 1.0, 0.1)
    assert stats.nbinom.ppf(0.9, 1.0, 0.1) == 21.0


def test_rows_far_from_the_guess_still_get_scipys_answer(monkeypatch):
    """With no unit steps allowed every row the guess misses falls back to ``nbinom.ppf``."""
    monkeypatch.setattr(distribution, "_MAX_STEPS", 0)
    mean = np.geomspace(0.5, 1e4, 200)
    for size in (0.05, 0.3, 5.0):
        np.testing.assert_array_equal(nbinom_quantile(mean, size, 0.9), _ppf(mean, size, 0.9))


def test_shape_and_missing_values_as_scipy_gives_them():
    mean = np.array([[0.2, 3.0], [np.nan, 50.0]])
    fast = count_quantiles(mean, 2.0, 0.9)
    assert fast.shape == (2, 2)
    np.testing.assert_array_equal(fast, _ppf(mean, 2.0, 0.9))
    np.testing.assert_array_equal(
        count_quantiles(mean, None, 0.9), stats.poisson.ppf(0.9, np.maximum(mean, 1e-9))
    )
