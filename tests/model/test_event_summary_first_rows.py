"""``_first_located``: the located event with the smallest row of each key, by any path."""

from __future__ import annotations

import numpy as np
import pytest

from geo_busyness.model.event_summary import _first_located


def _by_brute_force(key, rows, located, n) -> np.ndarray:
    order = np.arange(len(key)) if rows is None else rows
    first = np.full(n, -1, dtype=np.int64)
    for key_code in range(n):
        mine = np.flatnonzero((key == key_code) & located)
        if len(mine):
            first[key_code] = mine[np.argmin(order[mine])]
    return first


@pytest.mark.parametrize("rows_kind", ["positions", "increasing", "shuffled"])
def test_first_located_is_the_smallest_row_of_each_key(rows_kind: str) -> None:
    rng = np.random.default_rng(7)
    n, size = 12, 400
    key = rng.integers(0, n - 2, size).astype(np.int64)  # the last two keys have no event
    located = rng.random(size) > 0.3
    rows = {
        "positions": None,
        "increasing": np.cumsum(rng.integers(1, 5, size)),
        "shuffled": rng.permutation(size * 3)[:size],
    }[rows_kind]
    found = _first_located(key, rows, located, n)
    np.testing.assert_array_equal(found, _by_brute_force(key, rows, located, n))
    assert (found[-2:] == -1).all()


def test_first_located_with_nothing_located() -> None:
    key = np.array([0, 1, 1], dtype=np.int64)
    found = _first_located(key, None, np.zeros(3, dtype=bool), 2)
    np.testing.assert_array_equal(found, [-1, -1])
