"""event_summary's fast paths give what the plain formulas give (issue #25 item 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model import event_summary as summary
from geo_busyness.model.cell_hours import count_pairs
from geo_busyness.model.event_summary import (
    DISTANCE_QUANTUM,
    cell_venue_partials,
    distance_units,
    event_codes,
    event_values,
    summarise_events,
)
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME, VENUE_ID, VENUE_LAT, VENUE_LON


def _plain_units(distances) -> np.ndarray:
    """The formula: NaN as 0, rounded to the nearest quantum (ties to even)."""
    values = np.nan_to_num(np.array(distances, dtype=float), nan=0.0)
    return np.rint(values / DISTANCE_QUANTUM).astype(np.int64)


def test_distance_units_are_the_plain_formula_across_blocks(monkeypatch):
    monkeypatch.setattr(summary, "_UNITS_BLOCK", 7)  # several blocks and a short last one
    rng = np.random.default_rng(0)
    distances = rng.exponential(2.0, 60)
    distances[::5] = np.nan
    distances[1:4] = np.array([0.5, 1.5, -2.5]) * DISTANCE_QUANTUM  # ties
    before = distances.copy()
    units = distance_units(distances)
    np.testing.assert_array_equal(units, _plain_units(distances))
    assert units.dtype == np.int64
    np.testing.assert_array_equal(distances, before)  # the input is not changed


@pytest.mark.parametrize("distances", [[], [np.nan, np.nan], [1.0, 2.0], [-3.0, np.nan]])
def test_distance_units_of_small_inputs(distances):
    np.testing.assert_array_equal(distance_units(distances), _plain_units(distances))


@pytest.mark.parametrize("distances", [[np.inf, 1.0], [-np.inf], [1e30, 1e30, np.nan]])
def test_distances_too_large_to_sum_exactly_are_refused(distances):
    with pytest.raises(ValueError, match="too large"):
        distance_units(distances)


def _events(n: int = 400, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    venue_lat = rng.choice([50.45, 50.46, np.nan], n)
    events = pd.DataFrame(
        {
            EVENT_TIME: pd.Timestamp("2026-01-05", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 72, n), "h"),
            EVENT_LAT: rng.uniform(50.4, 50.5, n),
            EVENT_LON: rng.uniform(-104.7, -104.5, n),
            VENUE_LAT: venue_lat,
            VENUE_LON: np.where(np.isnan(venue_lat), np.nan, -104.6),
            VENUE_ID: pd.array(np.where(np.isnan(venue_lat), None, rng.integers(0, 5, n))).astype(
                "Int64"
            ),
        }
    )
    cells = rng.choice(np.array([11, 7, 30, 5], dtype=np.uint64), n)
    hours = events[EVENT_TIME].array.asi8
    return events, cells, hours


def test_shared_codes_give_the_summaries_computed_alone():
    """The feature node numbers cells and restaurants once for all events and reuses the codes
    for the train window's subset: the same partials (row order included) and counts."""
    events, cells, hours = _events()
    values = event_values(events)
    codes = event_codes(cells, values.venues)
    where = hours < np.median(hours)
    window = (pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-02-01", tz="UTC"))
    common = {"resolution": 7, "max_anchor_points": 10, "seed": 0, "window": window}
    for subset in (None, where):
        alone = summarise_events(events, cells=cells, hours=hours, where=subset, **common)
        shared = summarise_events(
            events, cells=cells, hours=hours, values=values, where=subset, codes=codes, **common
        )
        pd.testing.assert_frame_equal(shared.partials, alone.partials)
        pd.testing.assert_frame_equal(shared.counts, alone.counts)
    np.testing.assert_array_equal(codes.cells, pd.factorize(cells)[0])  # not changed


def test_partials_with_rows_as_positions_equal_explicit_positions():
    events, cells, _ = _events(seed=2)
    positions = cell_venue_partials(events, cells, None)
    explicit = cell_venue_partials(events, cells, np.arange(len(events)))
    pd.testing.assert_frame_equal(positions, explicit)
    empty = events.iloc[:0]
    pd.testing.assert_frame_equal(
        cell_venue_partials(empty, cells[:0], None),
        cell_venue_partials(empty, cells[:0], np.arange(0)),
    )


def test_counts_from_codes_of_a_superset_equal_counts_computed_alone():
    _, cells, hours = _events(seed=3)
    codes, distinct = pd.factorize(np.concatenate([cells, np.array([99, 1], dtype=np.uint64)]))
    before = codes.copy()
    alone = count_pairs(cells, hours)
    shared = count_pairs(cells, hours, (codes[: len(cells)], np.asarray(distinct, np.uint64)))
    for got, expected in zip(shared, alone, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(codes, before)
