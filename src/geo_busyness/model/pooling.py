"""A sparse cell's seasonal profile pooled with its H3 neighbours' weekly shape.

With a few weeks of history a cell's hour-of-week profile rests on a few counts per slot. The
pooled profile shrinks it toward the cell's own level times the weekly shape of its
neighbourhood (the cell and its ring of adjacent cells, ``h3.grid_disk(cell, 1)``):

``pooled = (n * own + w * level * neighbourhood_shape) / (n + w)``

where ``n`` is the weeks behind the slot and ``w`` (weeks of prior weight) is chosen on
validation (``POOL_WEEKS``). Neighbours share a street's rhythm (offices, nightlife) better
than the whole city does. Everything reads data before the origin only; the neighbourhood is
fixed by the cells the history knows.
"""

from __future__ import annotations

import h3
import numpy as np
from scipy import sparse

from geo_busyness.model.history import DerivedHistory

#: Prior weights (weeks) a validation tries; 0 is the raw profile (the recent-level baseline).
POOL_WEEKS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)


def neighbourhood_matrix(cells: np.ndarray) -> sparse.csr_matrix:
    """(cells + 1) x (cells + 1) 0/1 matrix: each known cell's ring of radius 1 among the known
    cells, itself included; the last row (unseen cells) is itself alone."""
    cells = np.asarray(cells, dtype=np.uint64)
    disks = [h3.grid_disk(h3.int_to_str(int(cell)), 1) for cell in cells]
    sizes = np.fromiter((len(disk) for disk in disks), dtype=np.int64, count=len(disks))
    ring = np.fromiter(
        (h3.str_to_int(n) for disk in disks for n in disk), dtype=np.uint64, count=sizes.sum()
    )
    owner = np.repeat(np.arange(len(cells)), sizes)
    position = np.searchsorted(cells, ring).clip(0, max(len(cells) - 1, 0))
    known = cells[position] == ring if len(cells) else np.zeros(0, bool)
    rows = np.append(owner[known], len(cells))
    cols = np.append(position[known], len(cells))
    n = len(cells) + 1
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


class NeighbourhoodSums:
    """Running counts and profiles summed over each cell's neighbourhood (built once)."""

    def __init__(self, derived: DerivedHistory) -> None:
        ring = neighbourhood_matrix(derived.history.cells)
        self.derived = derived
        self.cum_counts = np.asarray(ring @ derived.cum_counts)
        self.profile = np.asarray(ring @ np.nan_to_num(derived.profile))

    def pooled_profile(
        self, rows: np.ndarray, origin: np.ndarray, target: np.ndarray, weeks: float
    ) -> np.ndarray:
        """The profile of (row, target hour) pooled toward level x neighbourhood shape, with
        the level and shape from the positions before ``origin``."""
        derived = self.derived
        own = np.nan_to_num(derived.profile[rows, target])
        if weeks <= 0:
            return own
        before = np.maximum(origin, 1)
        level = derived.cum_counts[rows, before] / before
        ring_level = self.cum_counts[rows, before] / before
        shape = np.where(
            ring_level > 0, self.profile[rows, target] / np.maximum(ring_level, 1e-12), 1.0
        )
        n = derived.weeks[target]
        return (n * own + weeks * level * shape) / (n + weeks)
