"""A window's events summarised in blocks that add up: what ``BusynessFeatures`` fits from.

The pandas fit summarises a window in one block (``summarise_events``); Spark summarises each
Arrow batch (``spark.h3``) and adds the blocks up by key. Both give the same ``EventSummary``
because every sum is exact (distances as integers of ``DISTANCE_QUANTUM``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import count_pairs, counts_frame, utc_hour_ns
from geo_busyness.model.geo import euclidean_deg, h3_cells, haversine_km
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    VENUE_ID,
    VENUE_LAT,
    VENUE_LON,
)

#: Distances are summed as integers of this many km (Haversine) or degrees (Euclidean): sums
#: of integers are exact whatever the blocks and their order, so the pandas fit (one block)
#: and Spark (one block per Arrow batch, added up by key) give the same bits.
DISTANCE_QUANTUM = 2.0**-24
#: The restaurant key of events without one.
NO_VENUE = -1
#: ``FIRST_ROW`` of a (cell, restaurant) with no located event.
NO_ROW = np.iinfo(np.int64).max
#: Columns of ``cell_venue_partials`` that add up across blocks of events.
PARTIAL_SUMS = ("events", "dist_units", "hdist_units", "with_distance")
#: The smallest row of a (cell, restaurant) with the restaurant located; merged by its minimum.
FIRST_ROW = "first_row"
#: Taken at ``FIRST_ROW`` when blocks merge: the restaurant's coordinates there.
AT_FIRST_ROW = (VENUE_LAT, VENUE_LON)
#: The blocks' keys: one partial row per (cell, restaurant or ``NO_VENUE``).
PARTIAL_KEYS = (CELL, VENUE_ID)


#: ``_first_located``'s mark of a key with no located event yet (larger than any position).
_NO_POSITION = np.iinfo(np.int64).max

#: Rows per block of ``distance_units``: its temporaries stay in the cache.
_UNITS_BLOCK = 1 << 16


def distance_units(distances: np.ndarray) -> np.ndarray:
    """Distances as int64 multiples of ``DISTANCE_QUANTUM`` (0 where NaN)."""
    distances = np.asarray(distances, dtype=float)
    largest = max(np.fmax.reduce(distances), -np.fmin.reduce(distances)) if len(distances) else 0
    if largest * len(distances) >= 2.0**62 * DISTANCE_QUANTUM:  # NaN (all NaN) compares False
        raise ValueError("Distances too large to sum exactly in int64 units.")
    # Block by block into the one int64 output: at 10M events a whole-column temporary is
    # 80 MB of fresh pages. Multiplying by a power of two gives the same bits as dividing.
    units = np.empty(len(distances), dtype=np.int64)
    for start in range(0, len(distances), _UNITS_BLOCK):
        block = distances[start : start + _UNITS_BLOCK] * (1 / DISTANCE_QUANTUM)
        np.rint(block, out=block)
        block[np.isnan(block)] = 0.0
        units[start : start + _UNITS_BLOCK] = block
    return units


def venue_keys(values: Any) -> np.ndarray:
    """Restaurant ids as int64, ``NO_VENUE`` where null (ids are non-negative: ``geo.venue_id``)."""
    ids = pd.Series(values).astype("Int64")
    return ids.to_numpy(dtype=np.int64, na_value=NO_VENUE)


@dataclass(frozen=True)
class EventValues:
    """What ``cell_venue_partials`` sums per event, computed once for a table and taken for a
    subset of it (the train window's events are a subset of all events: their distances need
    no second pass of trigonometry)."""

    venues: np.ndarray
    dist_units: np.ndarray
    hdist_units: np.ndarray
    with_distance: np.ndarray
    venue_lat: np.ndarray
    venue_lon: np.ndarray

    def take(self, where: np.ndarray) -> EventValues:
        """The values of the events ``where`` selects (a boolean mask or positions)."""
        return EventValues(*(getattr(self, name)[where] for name in self.__dataclass_fields__))


def event_values(events: pd.DataFrame) -> EventValues:
    """Each event's restaurant key, ping-to-restaurant distances in ``DISTANCE_QUANTUM`` units
    and restaurant coordinates (``events`` has the event and restaurant coordinates and
    ``VENUE_ID``; absent restaurant columns are read as nulls)."""
    events = _with_columns(events, (VENUE_LAT, VENUE_LON, VENUE_ID))
    lat, lon = events[EVENT_LAT].to_numpy(float), events[EVENT_LON].to_numpy(float)
    venue_lat = events[VENUE_LAT].to_numpy(float, na_value=np.nan)
    venue_lon = events[VENUE_LON].to_numpy(float, na_value=np.nan)
    dist = euclidean_deg(lat, lon, venue_lat, venue_lon)
    return EventValues(
        venues=venue_keys(events[VENUE_ID]),
        dist_units=distance_units(dist),
        hdist_units=distance_units(haversine_km(lat, lon, venue_lat, venue_lon)),
        with_distance=~np.isnan(dist),
        venue_lat=venue_lat,
        venue_lon=venue_lon,
    )


@dataclass(frozen=True)
class EventCodes:
    """Each event's H3 cell and restaurant key numbered by hashing (``pd.factorize``), once for
    a table and taken for a subset of it (the subset's codes index the table's values)."""

    cells: np.ndarray
    cell_values: np.ndarray
    venues: np.ndarray
    venue_values: np.ndarray

    def take(self, where: np.ndarray) -> EventCodes:
        """The codes of the events ``where`` selects (a boolean mask or positions)."""
        return EventCodes(
            self.cells[where], self.cell_values, self.venues[where], self.venue_values
        )


def event_codes(cells: np.ndarray, venues: np.ndarray) -> EventCodes:
    """``EventCodes`` of events with these H3 cells and restaurant keys (``venue_keys``)."""
    cell_code, cell_values = pd.factorize(np.asarray(cells, dtype=np.uint64))
    venue_code, venue_values = pd.factorize(venues)
    return EventCodes(
        cell_code,
        np.asarray(cell_values, dtype=np.uint64),
        venue_code,
        np.asarray(venue_values, dtype=np.int64),
    )


def cell_venue_partials(
    events: pd.DataFrame,
    cells: np.ndarray,
    rows: np.ndarray | None,
    values: EventValues | None = None,
    codes: EventCodes | None = None,
) -> pd.DataFrame:
    """Per (cell, restaurant) of a block of events (``PARTIAL_KEYS``; ``NO_VENUE`` for events
    without one): ``PARTIAL_SUMS`` (events, the ping-to-restaurant distances in
    ``DISTANCE_QUANTUM`` units, events with a distance) and the block's smallest row (``rows``:
    a position or ``SOURCE_ROW``; None: the events' positions) where the restaurant is
    located, with its coordinates there.

    ``events`` has the event and restaurant coordinates and ``VENUE_ID`` (``values``: their
    ``event_values`` when the caller has them; ``events`` is then not read); ``cells`` their
    H3 cells. Blocks merge by summing ``PARTIAL_SUMS`` and keeping ``AT_FIRST_ROW`` at the
    smallest ``FIRST_ROW``; ``cell_statistics`` and ``first_restaurants`` read the result.
    ``codes`` may pass the events' ``EventCodes`` when the caller has them.
    """
    if values is None:
        values = event_values(events)
    venues, venue_lat, venue_lon = values.venues, values.venue_lat, values.venue_lon
    key, cell_values, venue_values = _pair_codes(
        codes if codes is not None else event_codes(cells, venues)
    )
    n = len(cell_values)
    sums = {
        "events": np.bincount(key, minlength=n).astype(np.int64),
        "dist_units": _int_sums(key, values.dist_units, n),
        "hdist_units": _int_sums(key, values.hdist_units, n),
        "with_distance": np.bincount(key, weights=values.with_distance, minlength=n).astype(
            np.int64
        ),
    }
    located = (venues != NO_VENUE) & ~np.isnan(venue_lat) & ~np.isnan(venue_lon)
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
    first = _first_located(key, rows, located, n)
    found, at = first >= 0, first.clip(0)
    some = len(key) > 0
    first_row = at if rows is None else (rows[at] if some else NO_ROW)
    return pd.DataFrame(
        {
            CELL: cell_values,
            VENUE_ID: venue_values,
            **sums,
            FIRST_ROW: np.where(found, first_row, NO_ROW),
            VENUE_LAT: np.where(found, venue_lat[at] if some else np.nan, np.nan),
            VENUE_LON: np.where(found, venue_lon[at] if some else np.nan, np.nan),
        }
    )


def _pair_codes(codes: EventCodes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code of each event's (cell, restaurant) pair (hashing, not sorting; numbered as the
    pairs first appear), and each code's cell and restaurant."""
    width = max(len(codes.venue_values), 1)
    pair = np.multiply(codes.cells, width, dtype=np.int64)
    pair += codes.venues
    key, distinct = pd.factorize(pair)
    return (
        key.astype(np.int64, copy=False),
        codes.cell_values[distinct // width],
        codes.venue_values[distinct % width],
    )


def _int_sums(key: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per key code."""
    sums = np.zeros(n, dtype=np.int64)
    np.add.at(sums, key, values)
    return sums


def _first_located(
    key: np.ndarray, rows: np.ndarray | None, located: np.ndarray, n: int
) -> np.ndarray:
    """Per key code, the position of its located event with the smallest row (-1: none;
    ``rows`` None: the rows are the positions, already in order)."""
    candidates = np.flatnonzero(located)
    first = np.full(n, -1, dtype=np.int64)
    if rows is not None and len(candidates) > 1 and (np.diff(rows[candidates]) < 0).any():
        candidates = candidates[np.argsort(rows[candidates], kind="stable")]
        firsts = candidates[~pd.Series(key[candidates]).duplicated().to_numpy()]
        first[key[firsts]] = firsts
        return first
    # Rows in position order: the first is the smallest position, found without hashing the
    # keys (``minimum.at`` is several times faster than ``duplicated`` on 10M events).
    smallest = np.full(n, _NO_POSITION, dtype=np.int64)
    np.minimum.at(smallest, key[candidates], candidates)
    np.copyto(first, smallest, where=smallest != _NO_POSITION)
    return first


def cell_statistics(
    partials: pd.DataFrame, cells: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell of ``cells`` (sorted): mean Euclidean and Haversine ping-to-restaurant distance
    (NaN without one) and distinct restaurants, from merged ``cell_venue_partials``."""
    rows = np.searchsorted(cells, partials[CELL].to_numpy(np.uint64))
    n = len(cells)
    with_distance = _int_sums(rows, partials["with_distance"].to_numpy(np.int64), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = [
            _int_sums(rows, partials[units].to_numpy(np.int64), n)
            * DISTANCE_QUANTUM
            / with_distance
            for units in ("dist_units", "hdist_units")
        ]
    restaurants = np.bincount(rows[partials[VENUE_ID].to_numpy() != NO_VENUE], minlength=n)
    return means[0], means[1], restaurants.astype(float)


def first_restaurants(partials: pd.DataFrame) -> np.ndarray:
    """Each located restaurant's coordinates (lat, lon) at its first row, from merged
    ``cell_venue_partials`` (a restaurant seen in several cells keeps its smallest row)."""
    located = partials[(partials[VENUE_ID] != NO_VENUE) & (partials[FIRST_ROW] != NO_ROW)]
    first = located.sort_values([FIRST_ROW, VENUE_ID], kind="stable").drop_duplicates(VENUE_ID)
    return first[[VENUE_LAT, VENUE_LON]].to_numpy(dtype=float)


def rows_with_values(partials: pd.DataFrame) -> dict[tuple[str, ...], int]:
    """Events with a value in each column set of ``SOURCE_COLUMN_FEATURES``, from partials."""
    with_venue = partials[VENUE_ID].to_numpy() != NO_VENUE
    return {
        (VENUE_LAT, VENUE_LON): int(partials["with_distance"].sum()),
        (VENUE_ID,): int(partials["events"].to_numpy()[with_venue].sum()),
    }


def anchor_positions(n: int, k: int, seed: int) -> np.ndarray | None:
    """Positions (in the events sorted by lat, lon) of the ``k`` event locations taken as anchors
    when there are no restaurants; None when all ``n`` are taken."""
    if n <= k:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


def sample_event_points(lat: np.ndarray, lon: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The anchor sample of event locations (``anchor_positions``), as (lat, lon) rows."""
    order = np.lexsort((lon, lat))
    positions = anchor_positions(len(order), k, seed)
    taken = order if positions is None else order[positions]
    return np.column_stack([lat[taken], lon[taken]]).astype(float)


@dataclass(frozen=True)
class EventSummary:
    """What ``BusynessFeatures`` fits from, small whatever the number of events: for the events
    whose UTC hour is in [start, end), merged ``cell_venue_partials``, their counts per
    cell-hour (``count_cell_hours``), their table's columns and, only when none has a located
    restaurant, the sampled event locations (``sample_event_points``)."""

    partials: pd.DataFrame
    counts: pd.DataFrame
    columns: tuple[str, ...]
    event_points: np.ndarray
    start: pd.Timestamp
    end: pd.Timestamp


#: The event columns a summary reads (those a table has; absent restaurant columns are null).
SUMMARY_COLUMNS = (EVENT_TIME, EVENT_LAT, EVENT_LON, VENUE_LAT, VENUE_LON, VENUE_ID)


def summarise_events(  # noqa: PLR0913 - what the caller may have computed already
    events: pd.DataFrame,
    *,
    resolution: int,
    max_anchor_points: int,
    seed: int,
    window: tuple[pd.Timestamp, pd.Timestamp],
    cells: np.ndarray | None = None,
    hours: np.ndarray | None = None,
    values: EventValues | None = None,
    where: np.ndarray | None = None,
    codes: EventCodes | None = None,
) -> EventSummary:
    """The ``EventSummary`` of ``events``, the events of ``window`` (one block: rows by
    position). ``cells``, ``hours`` (``utc_hour_ns``) and ``values`` (``event_values``) may pass
    what the caller has computed for ``events`` already; ``where`` (a boolean mask) summarises
    only the events it selects, without copying the table (their rows numbered in order);
    ``codes`` (``event_codes``) the events' numbered cells and restaurants."""
    columns = tuple(events.columns)
    events = _with_columns(events, (VENUE_LAT, VENUE_LON, VENUE_ID))  # absent: all null
    if cells is None:
        cells = h3_cells(events[EVENT_LAT], events[EVENT_LON], resolution)
    if values is None:
        values = event_values(events)
    if hours is None:
        hours = utc_hour_ns(events[EVENT_TIME])
    if codes is None:
        codes = event_codes(cells, values.venues)
    if where is not None:
        cells, hours, values = cells[where], hours[where], values.take(where)
        codes = codes.take(where)
    partials = cell_venue_partials(events, cells, None, values, codes)
    points = np.empty((0, 2))
    if not len(first_restaurants(partials)):
        lat, lon = (events[col].to_numpy(dtype=float) for col in (EVENT_LAT, EVENT_LON))
        if where is not None:
            lat, lon = lat[where], lon[where]
        points = sample_event_points(lat, lon, max_anchor_points, seed)
    counts = counts_frame(
        *count_pairs(np.asarray(cells, dtype=np.uint64), hours, (codes.cells, codes.cell_values))
    )
    return EventSummary(partials, counts, columns, points, *fit_window(*window))


def _with_columns(events: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``events`` with every absent one of ``columns`` added as nulls."""
    absent = {col: np.nan for col in columns if col not in events.columns}
    return events.assign(**absent) if absent else events


def fit_window(
    start: pd.Timestamp | str, end: pd.Timestamp | str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The hours a fit covers: [start, end) as UTC hour starts (naive = UTC; each floored)."""
    return as_utc_hour(pd.Timestamp(start)), as_utc_hour(pd.Timestamp(end))


def as_utc_hour(moment: pd.Timestamp) -> pd.Timestamp:
    """A timestamp as UTC (naive = UTC), floored to its hour, in nanoseconds."""
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.floor("h").as_unit("ns")
