"""The pooled profile: each cell's H3 neighbourhood, and a sparse cell's profile shrunk toward
its level times the neighbourhood's weekly shape."""

from __future__ import annotations

import pickle

import h3
import numpy as np
import pandas as pd

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.history import CountHistory, DerivedHistory
from geo_busyness.model.pooling import NeighbourhoodSums, neighbourhood_matrix

START = pd.Timestamp("2026-01-05T06:00:00Z")
CENTRE = h3.latlng_to_cell(50.45, -104.61, 8)
FAR = h3.latlng_to_cell(50.30, -104.20, 8)


def _cells() -> np.ndarray:
    """A centre cell, its six neighbours and one far away, as sorted uint64."""
    names = [*h3.grid_disk(CENTRE, 1), FAR]
    return np.sort(np.array([h3.str_to_int(c) for c in names], dtype=np.uint64))


def test_a_cells_neighbourhood_is_its_ring_among_the_known_cells():
    cells = _cells()
    ring = neighbourhood_matrix(cells).toarray()
    centre, far = (int(np.searchsorted(cells, h3.str_to_int(c))) for c in (CENTRE, FAR))
    assert ring.shape == (len(cells) + 1, len(cells) + 1)
    assert ring[centre].sum() == 7 and ring[far].sum() == 1 and ring[far, far] == 1
    assert ring[-1].sum() == 1 and ring[-1, -1] == 1  # unseen cells: themselves alone
    assert (ring == ring.T).all()  # a neighbour's neighbourhood holds the cell back


def _shared_shape_history(weeks: int, seed: int) -> tuple[CountHistory, np.ndarray]:
    """Every cell: its own level times one shared weekly shape, Poisson counts."""
    rng = np.random.default_rng(seed)
    cells = _cells()
    shape = np.tile(rng.gamma(2.0, 1.0, 168), weeks)
    level = np.array([0.3, 2, 3, 4, 2, 3, 4, 1.0])[: len(cells), None]
    truth = level * shape
    counts = rng.poisson(truth).astype(np.float32)
    return CountHistory(cells, START.value, counts, "America/Regina"), truth


def test_pooling_a_sparse_cell_with_its_neighbours_brings_its_profile_closer_to_the_truth():
    history, truth = _shared_shape_history(weeks=3, seed=4)
    sums = NeighbourhoodSums(DerivedHistory(history))
    rows = np.zeros(168, dtype=np.int64) + int(np.argmin(truth[:, :168].sum(axis=1)))
    origin = np.full(168, 2 * 168)
    target = origin + np.arange(168)
    raw = sums.pooled_profile(rows, origin, target, weeks=0.0)
    pooled = sums.pooled_profile(rows, origin, target, weeks=4.0)
    assert np.array_equal(raw, np.nan_to_num(sums.derived.profile[rows, target]))
    error = {
        name: np.abs(p - truth[rows, target]).mean()
        for name, p in [("raw", raw), ("pooled", pooled)]
    }
    assert error["pooled"] < 0.8 * error["raw"], error


def test_the_pooled_level_at_weight_zero_is_the_recent_level_and_survives_a_pickle():
    history, _ = _shared_shape_history(weeks=4, seed=5)
    weights = [[0.25, 0.25, 0.0, 0.25]] * 3
    recent, pooled = (BusynessForecaster(method=m) for m in ("recent_level", "pooled_level"))
    for model in (recent, pooled):
        model.history_, model.recency_weights_, model.pool_weeks_ = history, weights, 0.0
        model.pool_adjacent_weeks_ = 0.0
        model.blend_weights_ = None
    rows = np.repeat(np.arange(len(history.cells)), 40)
    origin = np.tile(np.arange(400, 440), len(history.cells))
    horizon = np.tile(np.arange(1, 41), len(history.cells))
    assert np.allclose(
        pooled.predict_rows(rows, origin, horizon), recent.predict_rows(rows, origin, horizon)
    )
    pooled.pool_weeks_, pooled.pool_adjacent_weeks_ = 4.0, 1.0
    answer = pooled.predict_rows(rows, origin, horizon)
    restored = pickle.loads(pickle.dumps(pooled))
    assert "_neighbourhood" not in restored.__dict__
    assert np.array_equal(restored.predict_rows(rows, origin, horizon), answer)


def _smooth_day_history(weeks: int, seed: int) -> tuple[CountHistory, np.ndarray]:
    """Every cell: a daily rhythm that changes smoothly from hour to hour, Poisson counts."""
    rng = np.random.default_rng(seed)
    cells = _cells()
    hours = np.arange(weeks * 168)
    rhythm = 1.5 + np.sin(2 * np.pi * hours / 24)
    truth = np.linspace(0.5, 3.0, len(cells))[:, None] * rhythm
    return CountHistory(cells, START.value, rng.poisson(truth).astype(np.float32), "UTC"), truth


def test_pooling_with_the_adjacent_hours_brings_a_short_history_closer_to_a_smooth_truth():
    history, truth = _smooth_day_history(weeks=4, seed=6)
    sums = NeighbourhoodSums(DerivedHistory(history))
    rows = np.repeat(np.arange(len(history.cells)), 168)
    origin = np.full(len(rows), 3 * 168)
    target = origin + np.tile(np.arange(168), len(history.cells))
    raw = sums.pooled_profile(rows, origin, target, weeks=0.0)
    smoothed = sums.pooled_profile(rows, origin, target, weeks=0.0, adjacent=2.0)
    error = {
        name: np.abs(p - truth[rows, target]).mean()
        for name, p in [("raw", raw), ("adjacent", smoothed)]
    }
    assert error["adjacent"] < 0.85 * error["raw"], error


def test_the_adjacent_hours_never_read_the_origin_or_later():
    history, _ = _smooth_day_history(weeks=4, seed=7)
    origin_position = 3 * 168 + 5
    scrambled = history.counts.copy()
    scrambled[:, origin_position:] = np.random.default_rng(1).poisson(
        9.0, scrambled[:, origin_position:].shape
    )
    rows = np.repeat(np.arange(len(history.cells)), 168)
    origin = np.full(len(rows), origin_position)
    target = origin + np.tile(np.arange(168), len(history.cells))  # horizons 1..168
    answers = [
        NeighbourhoodSums(
            DerivedHistory(CountHistory(history.cells, history.start_ns, c, "UTC"))
        ).pooled_profile(rows, origin, target, weeks=2.0, adjacent=1.0)
        for c in (history.counts, scrambled)
    ]
    assert np.array_equal(answers[0], answers[1])
