"""The predictive distribution of a count: quantiles, the median rule, the dispersion fit, PIT.

A forecast's answer is a mean and P10/P50/P90 of a negative binomial around it (Poisson when
the size is None), with per horizon bucket a size fitted by maximum likelihood (the intervals)
and a median rule chosen by validation MAE (the P50): the negative binomial's median, or the
Poisson median of the same mean, which is higher at small means (mean 0.8: NB size 1 gives 0,
Poisson 1) and on sparse panels often scores the lower absolute error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special, stats

#: How the P50 is read from the mean: ``MEDIAN_RULES[0]`` = the fitted negative binomial's.
MEDIAN_RULES = ("negative_binomial", "poisson")
#: Candidate negative-binomial sizes for the interval calibration (None = Poisson).
SIZES = (*np.geomspace(0.05, 500.0, 41), None)
#: Rows a dispersion fit reads at most (a random sample beyond).
_FIT_ROWS = 500_000


def poisson_quantile(mean: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of a Poisson with this mean: exact, 8-80x faster than ``poisson.ppf``.

    A first guess, then unit steps until ``cdf(m - 1) < q <= cdf(m)``. The median's guess,
    ``floor(mean + 1/3 - 0.02 / mean)``, is checked only where it lies near an integer step;
    other quantiles start from a normal (Cornish-Fisher) guess, checked everywhere.
    """
    mean = np.maximum(np.asarray(mean, dtype=float), 1e-9)
    if q == 0.5:
        guess = mean + 1 / 3 - 0.02 / mean
        m = np.maximum(np.floor(guess), 0.0)
        check = np.flatnonzero((np.abs(guess - np.round(guess)) < 0.05) & (guess > -0.05))
    else:
        z = stats.norm.ppf(q)
        m = np.maximum(np.floor(mean + z * np.sqrt(mean) + (z * z - 1) / 6), 0.0)
        check = np.arange(m.size)
    flat = m.reshape(-1)  # a view: the steps land in m
    _settle(flat, check, q, lambda k, rows: special.pdtr(k, mean.reshape(-1)[rows]))
    return m


def nbinom_quantile(mean: np.ndarray, size: float, q: float) -> np.ndarray:
    """Quantile ``q`` of a negative binomial of this mean and ``size``: ``stats.nbinom.ppf``'s
    answers, 2-8x faster.

    0 wherever ``q <= p ** size`` (the pdf at 0: ``ppf``'s own first test); elsewhere a first
    guess (``_nbinom_guess``), then unit steps until ``cdf(m - 1) < q <= cdf(m)``, the cdf read
    from ``special.betainc`` (the incomplete beta behind ``nbinom.cdf`` and ``ppf``). Rows still
    moving after ``_MAX_STEPS`` steps get ``stats.nbinom.ppf`` itself.
    """
    shape = np.shape(mean)
    mean = np.maximum(np.asarray(mean, dtype=float).ravel(), 1e-9)
    p = size / (size + mean)
    m = np.zeros(len(mean))
    live = np.flatnonzero(~(q <= np.power(p, size)))  # NaN means stay live (and NaN)
    m[live] = _nbinom_guess(mean[live], size, q)
    rest = _settle(m, live, q, lambda k, rows: special.betainc(size, k + 1, p[rows]))
    if len(rest):
        m[rest] = stats.nbinom.ppf(q, size, p[rest])
    return m.reshape(shape)


#: Unit steps a quantile takes from its guess each way (a negative binomial's then asks ppf).
_MAX_STEPS = 64
#: Below this gamma shape, with a mean above ``_TAIL_MEAN``, the guess is the exact gamma
#: quantile: the cube-root normal misses a long tail by dozens of steps.
_TAIL_SHAPE, _TAIL_MEAN = 2.0, 2.0


def _settle(
    m: np.ndarray, rows: np.ndarray, q: float, cdf: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Unit steps of ``m[rows]`` (in place) until ``cdf(m - 1) < q <= cdf(m)``, where
    ``cdf(k, rows)`` is those rows' cdf at ``k``; the rows still moving after ``_MAX_STEPS``.

    A row steps up while ``cdf(m) < q`` (having stepped, ``cdf(m - 1) < q`` is known), else
    down while ``cdf(m - 1) >= q``: one cdf per row where the guess is right and 0, two where
    it is right and above 0.
    """
    below = cdf(m[rows], rows) < q
    up = rows[below]
    for _ in range(_MAX_STEPS):
        if not len(up):
            break
        m[up] += 1
        up = up[cdf(m[up], up) < q]
    down = rows[~below & (m[rows] > 0)]
    for _ in range(_MAX_STEPS):
        if not len(down):
            break
        down = down[cdf(m[down] - 1, down) >= q]
        m[down] -= 1
        down = down[m[down] > 0]
    return np.concatenate([up, down])


def _nbinom_guess(mean: np.ndarray, size: float, q: float) -> np.ndarray:
    """A first guess of a negative binomial's quantile ``q``: the gamma's of the same mean and
    variance (Wilson-Hilferty's cube-root normal; the exact gamma quantile in a long tail)."""
    scale = 1.0 + mean / size
    shape = mean / scale
    cube = 1.0 / (9.0 * shape)
    z = float(stats.norm.ppf(q))
    guess = mean * np.maximum(1.0 - cube + z * np.sqrt(cube), 0.0) ** 3
    tail = np.flatnonzero((shape < _TAIL_SHAPE) & (mean > _TAIL_MEAN))
    guess[tail] = special.gammaincinv(shape[tail], q) * scale[tail]
    return np.maximum(np.ceil(guess - 0.5), 0.0)


def count_quantiles(mean: np.ndarray, size: float | None, q: float) -> np.ndarray:
    """Quantile ``q`` of a negative binomial (Poisson when ``size`` is None) with this mean."""
    mean = np.maximum(np.asarray(mean, dtype=float), 1e-9)
    if size is None:
        return poisson_quantile(mean, q)
    return nbinom_quantile(mean, size, q)


def interval(
    mean: np.ndarray, size: float | None, median_rule: str = MEDIAN_RULES[0]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P10, P50, P90 of one bucket's rows; the P50 by ``median_rule``, kept inside P10..P90."""
    p10, p90 = _outer_quantiles(mean, size)
    return p10, _rule_median(mean, size, median_rule, p10, p90), p90


def medians(mean: np.ndarray, size: float | None) -> dict[str, np.ndarray]:
    """Each median rule's P50 of the rows (as ``interval`` gives it), their shared P10 and P90
    computed once: a negative binomial's quantiles are the costly part of a selection."""
    p10, p90 = _outer_quantiles(mean, size)
    return {rule: _rule_median(mean, size, rule, p10, p90) for rule in MEDIAN_RULES}


def _outer_quantiles(mean: np.ndarray, size: float | None) -> tuple[np.ndarray, np.ndarray]:
    """P10 and P90 of a negative binomial (Poisson when ``size`` is None) with this mean."""
    return count_quantiles(mean, size, 0.1), count_quantiles(mean, size, 0.9)


def _rule_median(
    mean: np.ndarray, size: float | None, rule: str, p10: np.ndarray, p90: np.ndarray
) -> np.ndarray:
    """The P50 by median ``rule`` (the Poisson's, or the negative binomial's of ``size``),
    kept inside P10..P90."""
    return np.clip(count_quantiles(mean, None if rule == "poisson" else size, 0.5), p10, p90)


def fit_size(y: np.ndarray, mean: np.ndarray, seed: int = 0) -> float | None:
    """The negative-binomial size (None = Poisson) of highest likelihood for (actual, mean).

    Coverage is not the objective: most cell-hours of a sparse panel are zero, and a zero lies
    inside any interval starting at 0, so a coverage target would pick a degenerate one.
    """
    y, mean = np.asarray(y, dtype=float), np.maximum(np.asarray(mean, dtype=float), 1e-9)
    if not len(y):
        return None
    if len(y) > _FIT_ROWS:
        pick = np.random.default_rng(seed).choice(len(y), _FIT_ROWS, replace=False)
        y, mean = y[pick], mean[pick]
    best, best_loglik = None, -np.inf
    for size in SIZES:
        if size is None:
            loglik = stats.poisson.logpmf(y, mean).sum()
        else:
            loglik = stats.nbinom.logpmf(y, size, size / (size + mean)).sum()
        if loglik > best_loglik:
            best, best_loglik = size, loglik
    return None if best is None else float(best)


def best_median_rule(y: np.ndarray, mean: np.ndarray, size: float | None) -> str:
    """The median rule with the lower MAE on (actual, mean) rows (ties: the first rule)."""
    errors = [float(np.mean(np.abs(y - interval(mean, size, rule)[1]))) for rule in MEDIAN_RULES]
    return MEDIAN_RULES[int(np.argmin(errors))]


def pit_coverage(y: np.ndarray, mean: np.ndarray, size: float | None, seed: int = 0) -> float:
    """Share of randomised PIT values in [0.1, 0.9]: the 80% coverage of a count forecast.

    For counts, ``P10 <= y <= P90`` over-covers (a zero is inside every interval that starts at
    0); the randomised probability integral transform is uniform for a calibrated forecast.
    """
    mean = np.maximum(mean, 1e-9)
    if size is None:
        below, at = special.pdtr(y - 1, mean), stats.poisson.pmf(y, mean)
        below = np.where(y > 0, below, 0.0)
    else:
        p = size / (size + mean)
        below, at = stats.nbinom.cdf(y - 1, size, p), stats.nbinom.pmf(y, size, p)
    pit = below + np.random.default_rng(seed).uniform(size=len(y)) * at
    return float(np.mean((pit >= 0.1) & (pit <= 0.9)))
