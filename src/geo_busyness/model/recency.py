"""The recent-level baseline: the seasonal profile times the recent level, weights from data.

``mean = profile * exp(sum_k w_k * log ratio_k)``, where the ratios are actual over profile
before the origin: city-wide over the last 3 h, 24 h and 7 days, and the cell's own over 7 days
(shrunk toward 1 by a pseudo-count, so a sparse cell barely moves). The weights, one set per
horizon bucket, are chosen on validation from a 0.25 grid that includes all zeros (the plain
seasonal naive) and the 7-day city ratio alone (the level-adjusted baseline): the nowcast
usually takes the last hours, the day ahead a blend of the day and the week.
"""

from __future__ import annotations

import itertools

import numpy as np

from geo_busyness.model.history import DerivedHistory
from geo_busyness.model.origin_features import per_origin, window_ratio

#: (scope, hours before the origin) of each log ratio the factor weighs.
COMPONENTS = (("city", 3), ("city", 24), ("city", 168), ("cell", 168))
#: Weight vectors on a 0.25 grid with a sum of at most 1 (the profile keeps the rest of 1).
GRID = np.array(
    [w for w in itertools.product(np.arange(5) / 4, repeat=len(COMPONENTS)) if sum(w) <= 1.0]
)
#: Until fitted: the 7-day city ratio alone (the level-adjusted baseline).
DEFAULT_WEIGHTS = (0.0, 0.0, 1.0, 0.0)


def log_ratios(derived: DerivedHistory, rows: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """The ``COMPONENTS`` log ratios of (row, origin) pairs, as a rows x components matrix
    (once per run of equal pairs: a table's horizons of one cell and origin come together)."""
    return per_origin(_log_ratios, derived, rows, origin)


def _log_ratios(derived: DerivedHistory, rows: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``log_ratios`` of every pair."""
    out = np.empty((len(rows), len(COMPONENTS)))
    for j, (scope, hours) in enumerate(COMPONENTS):
        cell, city = window_ratio(derived, rows, origin, np.maximum(origin - hours, 0))
        out[:, j] = cell if scope == "cell" else city
    return out


def recent_factor(ratios: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``exp(ratios @ weights)`` row by row (``weights`` one vector, or one per row)."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim == 1:
        return np.exp(ratios @ weights)
    return np.exp(np.einsum("ij,ij->i", ratios, weights))
