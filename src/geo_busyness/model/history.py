"""The counts a forecaster knows: a dense cell x hour matrix, and what every origin derives from it.

A forecast is made at an *origin*: the first hour that is not known yet (every hour before it
is). ``CountHistory`` holds the known counts, one row per cell, one column per UTC hour from
``start``; ``DerivedHistory`` adds the running sums that make each origin-based feature a
constant-time lookup (seasonal profile over past weeks, level ratios over the last hours),
computed once, vectorised over cells and hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import HOUR_NS, HOURS_PER_WEEK
from geo_busyness.schemas import CELL, HOUR, TARGET


@dataclass(frozen=True)
class CountHistory:
    """Known events per cell and UTC hour: ``counts[i, j]`` of ``cells[i]`` in hour ``start + j``."""

    cells: np.ndarray  # sorted uint64 H3 cells
    start_ns: int  # first known hour (UTC, int64 ns)
    counts: np.ndarray  # float32, len(cells) x hours
    timezone: str  # the source's local time zone (calendar features)

    @property
    def hours(self) -> int:
        """Number of known hours."""
        return int(self.counts.shape[1])

    @property
    def end_ns(self) -> int:
        """The hour after the last known one: the latest origin this history supports."""
        return self.start_ns + self.hours * HOUR_NS

    def positions(self, hours_ns: np.ndarray) -> np.ndarray:
        """Column index of UTC hours (int64 ns) relative to ``start`` (may be <0 or >= hours)."""
        return (np.asarray(hours_ns, dtype=np.int64) - self.start_ns) // HOUR_NS

    def rows(self, cells: np.ndarray) -> np.ndarray:
        """Row of each cell; cells the history never saw map to ``len(self.cells)`` (all zeros)."""
        cells = np.asarray(cells, dtype=np.uint64)
        pos = np.searchsorted(self.cells, cells).clip(0, max(len(self.cells) - 1, 0))
        known = len(self.cells) > 0
        found = (self.cells[pos] == cells) if known else np.zeros(len(cells), dtype=bool)
        return np.where(found, pos, len(self.cells))

    def extended(self, counts: pd.DataFrame, end_ns: int) -> CountHistory:
        """A history that also knows ``counts`` (``cell, hour, busyness``) up to ``end_ns``.

        Hours already known keep their counts; cells the history never saw are left out (a
        model knows the cells it was fitted on, the others get the unseen-cell answer).
        """
        hours = max(self.hours, (int(end_ns) - self.start_ns) // HOUR_NS)
        grown = np.zeros((len(self.cells), hours), dtype=np.float32)
        grown[:, : self.hours] = self.counts
        rows = self.rows(counts[CELL].to_numpy())
        cols = self.positions(pd.DatetimeIndex(counts[HOUR]).asi8)
        new = (rows < len(self.cells)) & (cols >= self.hours) & (cols < hours)
        np.add.at(grown, (rows[new], cols[new]), counts[TARGET].to_numpy(dtype=np.float32)[new])
        return CountHistory(self.cells, self.start_ns, grown, self.timezone)


def history_from_counts(
    counts: pd.DataFrame, cells: np.ndarray, start: pd.Timestamp, end: pd.Timestamp, timezone: str
) -> CountHistory:
    """A dense ``CountHistory`` of ``cells`` over [start, end) from ``cell, hour, busyness`` rows."""
    cells = np.sort(np.asarray(cells, dtype=np.uint64))
    empty = CountHistory(cells, int(start.value), np.zeros((len(cells), 0), np.float32), timezone)
    return empty.extended(counts, int(end.value))


class DerivedHistory:
    """Running sums of a ``CountHistory`` (plus one all-zero row for unseen cells).

    For hour position ``t``: ``profile[:, t]`` is the mean count at the same hour of the week in
    every earlier week (NaN before the first full week); ``cum_counts[:, o]`` the events before
    position ``o``; ``cum_profiled`` / ``cum_profile`` the same over hours that have a profile,
    for level ratios (actual over expected). Columns extend one week past the history, so a
    forecast up to a week ahead reads its profile without special cases.
    """

    def __init__(self, history: CountHistory) -> None:
        self.history = history
        cells, hours = history.counts.shape
        weeks = -(-(hours + HOURS_PER_WEEK) // HOURS_PER_WEEK)
        span = weeks * HOURS_PER_WEEK
        counts = np.zeros((cells + 1, span))
        counts[:cells, :hours] = history.counts
        by_week = counts.reshape(cells + 1, weeks, HOURS_PER_WEEK)
        earlier = np.cumsum(by_week, axis=1) - by_week  # sum over strictly earlier weeks
        n_weeks = np.minimum(np.arange(span) // HOURS_PER_WEEK, -(-hours // HOURS_PER_WEEK))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.profile = np.where(n_weeks > 0, earlier.reshape(cells + 1, span) / n_weeks, np.nan)
        self.weeks = n_weeks
        self.counts = counts
        profiled = np.where(np.isnan(self.profile), 0.0, counts)
        self.cum_counts = _cumulative(counts)
        self.cum_profiled = _cumulative(profiled)
        self.cum_profile = _cumulative(np.nan_to_num(self.profile))
        # City-wide sums (1-d over positions): per-row features then index, never sum cells.
        self.city_cum_counts = self.cum_counts.sum(axis=0)
        self.city_cum_profiled = self.cum_profiled.sum(axis=0)
        self.city_cum_profile = self.cum_profile.sum(axis=0)
        self.city_profile = np.nansum(self.profile, axis=0)

    @cached_property
    def calendar(self) -> dict[str, np.ndarray]:
        """Local hour of day, day of week and date (days since epoch) of every position."""
        span = self.counts.shape[1]
        utc = pd.DatetimeIndex(self.history.start_ns + np.arange(span) * HOUR_NS, tz="UTC")
        local = utc.tz_convert(self.history.timezone)
        return {
            "hour": local.hour.to_numpy(),
            "day_of_week": local.day_of_week.to_numpy(),
            "date": local.normalize().tz_localize(None).asi8 // (24 * HOUR_NS),
        }


def _cumulative(values: np.ndarray) -> np.ndarray:
    """Prefix sums along hours with a leading zero column: ``out[:, o] = values[:, :o].sum(1)``."""
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out
