"""PSI, KS and chi-square on distributions whose drift is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from geo_busyness.pipelines.monitoring.drift import (
    SHARE_FLOOR,
    categorical_drift,
    numeric_drift,
    psi_from_shares,
    quantile_edges,
)

N = 200_000


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_psi_of_known_shares():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = 0.25 * np.log(2) + 0.25 * np.log(1.5)
    assert psi_from_shares([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert psi_from_shares([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_an_empty_reference_bin_gives_a_large_finite_psi():
    psi = psi_from_shares([1.0, 0.0], [0.8, 0.2])
    assert np.isfinite(psi)
    # (0.8 - 1) ln(0.8 / 1) + (0.2 - floor) ln(0.2 / floor)
    expected = 0.2 * np.log(1 / 0.8) + (0.2 - SHARE_FLOOR) * np.log(0.2 / SHARE_FLOOR)
    assert psi == pytest.approx(expected)
    assert psi > 1


def test_same_distribution_no_drift(rng):
    result = numeric_drift(rng.normal(size=N), rng.normal(size=N // 5), bins=10)
    assert result["psi"] < 0.005
    assert result["ks_d"] < 0.01
    # deciles of the reference: 10 bins holding a tenth each
    assert len(result["bins"]["edges"]) == 9
    assert np.allclose(result["bins"]["reference"], 0.1, atol=1e-3)


def test_mean_shift_of_half_a_standard_deviation(rng):
    reference, recent = rng.normal(0, 1, N), rng.normal(0.5, 1, N)
    result = numeric_drift(reference, recent, bins=10)
    # KS distance of N(0,1) and N(0.5,1): 2 Phi(0.25) - 1
    assert result["ks_d"] == pytest.approx(2 * stats.norm.cdf(0.25) - 1, abs=0.01)
    assert result["ks_p_value"] < 1e-100
    # PSI on the reference's deciles, computed from the two normal CDFs
    edges = stats.norm.ppf(np.linspace(0, 1, 11))
    recent_shares = np.diff(stats.norm.cdf(edges, loc=0.5))
    expected = np.sum((recent_shares - 0.1) * np.log(recent_shares / 0.1))
    assert result["psi"] == pytest.approx(expected, abs=0.01)
    assert 0.2 < result["psi"] < 0.26  # below the continuous limit, delta^2 = 0.25


def test_tiny_shift_is_significant_but_small(rng):
    """With 5 x 10^5 rows a 0.03 sd shift has a tiny p-value and a negligible effect size."""
    reference, recent = rng.normal(0, 1, 500_000), rng.normal(0.03, 1, 500_000)
    result = numeric_drift(reference, recent, bins=10)
    assert result["ks_p_value"] < 1e-6
    assert result["ks_d"] < 0.02
    assert result["psi"] < 0.01


def test_tied_quantiles_merge_into_fewer_bins(rng):
    """Busyness counts are mostly zero: bins must merge, not split the zeros."""
    counts = rng.poisson(0.3, N)
    edges = quantile_edges(counts, 10)
    assert list(edges) == sorted(set(edges))
    result = numeric_drift(counts, rng.poisson(0.3, N), bins=10)
    assert sum(result["bins"]["reference"]) == pytest.approx(1)
    assert result["psi"] < 0.005
    assert numeric_drift(counts, rng.poisson(0.6, N), bins=10)["psi"] > 0.1


def test_non_finite_values_are_left_out_and_all_missing_is_an_error(rng):
    values = rng.normal(size=1000)
    with_nan = np.concatenate([values, [np.nan, np.inf]])
    assert numeric_drift(values, with_nan, bins=10)["recent_rows"] == 1000
    with pytest.raises(ValueError, match="Hdist_to_restaurant"):
        numeric_drift(values, [np.nan, np.nan], bins=10, name="Hdist_to_restaurant")


def test_categorical_drift_psi_and_chi_square(rng):
    hours = np.arange(24)
    uniform = rng.choice(hours, N)
    same = categorical_drift(uniform, rng.choice(hours, N), hours)
    assert same["psi"] < 0.001
    assert same["chi2_p_value"] > 1e-4
    weights = np.where((hours >= 17) & (hours < 22), 2.0, 1.0)
    evening = categorical_drift(uniform, rng.choice(hours, N, p=weights / weights.sum()), hours)
    expected_shares = weights / weights.sum()
    expected = np.sum((expected_shares - 1 / 24) * np.log(expected_shares * 24))
    assert evening["psi"] == pytest.approx(expected, abs=0.005)
    assert evening["chi2_p_value"] < 1e-100
    assert evening["bins"]["categories"] == hours.tolist()


def test_a_bucket_empty_in_the_reference_counts_fully():
    cells = np.array(["a", "b", "unseen"], dtype=object)
    reference = np.array(["a"] * 500 + ["b"] * 500, dtype=object)
    recent = np.array(["a"] * 400 + ["b"] * 400 + ["unseen"] * 200, dtype=object)
    result = categorical_drift(reference, recent, cells)
    assert result["bins"]["reference"] == [0.5, 0.5, 0.0]
    assert result["bins"]["recent"] == [0.4, 0.4, 0.2]
    assert result["psi"] > 1


def test_values_outside_the_categories_are_refused():
    with pytest.raises(ValueError, match="outside the categories"):
        categorical_drift(np.array([0, 1]), np.array([0, 7]), np.arange(7)[:2])
