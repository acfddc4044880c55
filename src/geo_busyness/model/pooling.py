"""A sparse cell's seasonal profile pooled with its adjacent hours and its H3 neighbours.

With a few weeks of history a cell's hour-of-week profile rests on a few counts per slot. The
pooled profile shrinks it toward two priors: the cell's own profile in the adjacent hours of
the week (the hour before and after: demand changes smoothly from hour to hour), and the cell's
own level times the weekly shape of its neighbourhood (the cell and its ring of adjacent cells,
``h3.grid_disk(cell, 1)``: neighbours share a street's rhythm better than the whole city does):

``pooled = (n * own + a * adjacent_hours + w * level * neighbourhood_shape) / (n + a + w)``

where ``n`` is the weeks behind the slot and ``a``, ``w`` (weeks of prior weight) are chosen
on validation (``ADJACENT_WEEKS`` x ``POOL_WEEKS``). As the weeks of history grow, the cell's
own profile takes over. Everything reads data before the origin only (the hour after a target
a week ahead is the origin itself, so there only the hour before counts); the neighbourhood is
fixed by the cells the history knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import h3
import numpy as np
from scipy import sparse

from geo_busyness.model.cell_hours import HOURS_PER_WEEK
from geo_busyness.model.history import DerivedHistory

#: Prior weights (weeks) a validation tries; 0 and 0 is the raw profile (the recent level).
POOL_WEEKS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)
ADJACENT_WEEKS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


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
        self,
        rows: np.ndarray,
        origin: np.ndarray,
        target: np.ndarray,
        weeks: float,
        adjacent: float = 0.0,
    ) -> np.ndarray:
        """The profile of (row, target hour) pooled toward the adjacent hours' profile at
        ``adjacent`` weeks and toward level x neighbourhood shape at ``weeks``, everything from
        the positions before ``origin``."""
        if weeks <= 0 and adjacent <= 0:
            return np.nan_to_num(self.derived.profile[rows, target])
        parts = self.pooling_parts(rows, origin, target, adjacent > 0, weeks > 0)
        return parts.pooled(weeks, adjacent)

    def pooling_parts(
        self,
        rows: np.ndarray,
        origin: np.ndarray,
        target: np.ndarray,
        adjacent: bool = True,
        neighbours: bool = True,
    ) -> PoolingParts:
        """What ``pooled_profile`` weighs, for any prior weights: computed once, a grid of
        weights only combines them (the adjacent hours' and the neighbourhood's parts only if
        asked for)."""
        derived = self.derived
        own = np.nan_to_num(derived.profile[rows, target])
        parts = PoolingParts(own=own, weeks=derived.weeks[target].astype(float))
        if adjacent:
            parts.adjacent = adjacent_hours_profile(derived, rows, origin, target, own)
        if neighbours:
            before = np.maximum(origin, 1)
            parts.level = derived.cum_counts[rows, before] / before
            ring_level = self.cum_counts[rows, before] / before
            parts.shape = np.where(
                ring_level > 0, self.profile[rows, target] / np.maximum(ring_level, 1e-12), 1.0
            )
        return parts


@dataclass
class PoolingParts:
    """The pooled profile's pieces that do not depend on the prior weights: the cell's own
    profile, the weeks behind it, the adjacent hours' profile, the cell's level and its
    neighbourhood's weekly shape."""

    own: np.ndarray
    weeks: np.ndarray
    adjacent: np.ndarray | None = None
    level: np.ndarray | None = None
    shape: np.ndarray | None = None

    def pooled(self, weeks: float, adjacent: float = 0.0) -> np.ndarray:
        """``(n * own + a * adjacent_hours + w * level * shape) / (n + a + w)``."""
        if weeks <= 0 and adjacent <= 0:
            return self.own
        total, weight = self.weeks * self.own, self.weeks.copy()
        if adjacent > 0:
            if self.adjacent is None:
                raise ValueError("These pooling parts were computed without the adjacent hours.")
            total += adjacent * self.adjacent
            weight += adjacent
        if weeks > 0:
            if self.level is None or self.shape is None:
                raise ValueError("These pooling parts were computed without the neighbourhood.")
            total += weeks * self.level * self.shape
            weight += weeks
        return total / weight


def adjacent_hours_profile(
    derived: DerivedHistory,
    rows: np.ndarray,
    origin: np.ndarray,
    target: np.ndarray,
    own: np.ndarray,
) -> np.ndarray:
    """The mean of the cell's profile in the hour before and the hour after ``target``; an
    hour whose profile is not known before ``origin`` (the hour after a target a week ahead
    reads the origin's own week; the first week has none) is left out, and with neither the
    target's own profile stands in."""
    profile = derived.profile
    before, after = target - 1, target + 1
    # profile[:, t] averages the counts at t - 168 k (k >= 1): known iff t - 168 < origin.
    has_before = before >= 0
    has_after = (after < profile.shape[1]) & (after - HOURS_PER_WEEK < origin)
    values = [
        np.where(has, profile[rows, np.clip(hour, 0, profile.shape[1] - 1)], np.nan)
        for has, hour in ((has_before, before), (has_after, after))
    ]
    known = [~np.isnan(v) for v in values]
    count = known[0].astype(float) + known[1]
    total = np.nan_to_num(values[0]) + np.nan_to_num(values[1])
    return np.where(count > 0, total / np.maximum(count, 1.0), own)
