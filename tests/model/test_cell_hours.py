"""UTC hour arithmetic and (H3 cell, hour) counting, against obvious pandas references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.cell_hours import (
    count_pairs,
    distinct_pairs,
    hour_fields,
    parse_time_parameter,
    to_utc_hours,
    utc_hour_ns,
)

START = pd.Timestamp("2026-01-05T00:00:00Z")


def test_utc_hour_ns_floors_like_to_utc_hours():
    values = pd.Series(
        ["2026-01-13T12:30:00Z", "2026-01-13T06:59:59-06:00", "1969-12-31T23:30:00", "2026-01-11"]
    )
    expected = to_utc_hours(values)
    np.testing.assert_array_equal(utc_hour_ns(values), expected.array.asi8)
    hour, day_of_week = hour_fields(utc_hour_ns(values))
    np.testing.assert_array_equal(hour, expected.dt.hour)
    np.testing.assert_array_equal(day_of_week, expected.dt.day_of_week)
    aware = pd.Series(pd.to_datetime(values.iloc[:2], utc=True))
    for zoned in (aware, aware.dt.tz_convert("Asia/Kathmandu"), aware.dt.as_unit("s")):
        np.testing.assert_array_equal(utc_hour_ns(zoned), to_utc_hours(zoned).array.asi8)
    with pytest.raises(ValueError, match="unparsable"):
        utc_hour_ns(pd.Series(["2026-01-13T12:30:00Z", None]))
    with pytest.raises(ValueError, match="1 query timestamp"):
        utc_hour_ns(pd.Series([aware.iloc[0], pd.NaT], dtype=aware.dtype))


def test_distinct_pairs_index_every_pair_once():
    cells = np.array([5, 3, 5, 5, 3], dtype=np.uint64)
    hours = np.array([10, 10, 10, 20, 10], dtype=np.int64)
    first, inverse = distinct_pairs(cells, hours)
    assert len(first) == 3
    np.testing.assert_array_equal(cells[first][inverse], cells)
    np.testing.assert_array_equal(hours[first][inverse], hours)


def _groupby_counts(cells: np.ndarray, hours: np.ndarray) -> pd.DataFrame:
    """The obvious (slow) reference: pandas groupby, sorted by cell then hour."""
    frame = pd.DataFrame({"cell": cells, "hour": hours})
    return frame.groupby(["cell", "hour"]).size().reset_index(name="n")


@pytest.mark.parametrize("dense_limit", [None, 1], ids=["dense grid", "sorted keys"])
def test_count_pairs_matches_a_groupby(dense_limit, monkeypatch):
    if dense_limit:  # the path for cell x hour grids too large to count into directly
        monkeypatch.setattr("geo_busyness.model.cell_hours._MAX_DENSE_BINS", dense_limit)
    rng = np.random.default_rng(7)
    cells = rng.choice(np.array([2**63 + 5, 17, 2**40, 9], dtype=np.uint64), 5000)
    hours = START.value + rng.integers(0, 400, 5000) * 3_600_000_000_000
    cell, hour, count = count_pairs(cells, hours)
    expected = _groupby_counts(cells, hours)
    np.testing.assert_array_equal(cell, expected["cell"].to_numpy(dtype=np.uint64))
    np.testing.assert_array_equal(hour, expected["hour"].to_numpy())
    np.testing.assert_array_equal(count, expected["n"].to_numpy())
    assert [a.dtype for a in (cell, hour, count)] == [np.uint64, np.int64, np.int64]


def test_count_pairs_of_nothing_is_empty():
    assert [len(a) for a in count_pairs(np.empty(0, np.uint64), np.empty(0, np.int64))] == [0] * 3


@pytest.mark.parametrize(
    ("value", "timezone", "expected"),
    [
        ("2026-03-02 12:00", "America/Regina", "2026-03-02T18:00:00+00:00"),  # naive: local
        ("2026-07-02T12:00", "America/New_York", "2026-07-02T16:00:00+00:00"),  # summer time
        ("2026-03-02T12:00:00Z", "America/Regina", "2026-03-02T12:00:00+00:00"),  # aware
        ("2026-03-02T12:00:00+02:00", "America/Regina", "2026-03-02T10:00:00+00:00"),
        (pd.Timestamp("2026-03-02 12:00").to_pydatetime(), "UTC", "2026-03-02T12:00:00+00:00"),
    ],
)
def test_time_parameters_naive_in_the_source_timezone_aware_converted(value, timezone, expected):
    moment = parse_time_parameter(value, timezone, "inference.start")
    assert moment.isoformat() == expected
    assert moment.unit == "ns"


@pytest.mark.parametrize("value", ["next tuesday", "", "2026-13-01", 20260302, None])
def test_an_unparsable_time_parameter_names_the_parameter_and_the_value(value):
    with pytest.raises(ValueError, match="feature_engineering.end must be an ISO 8601") as error:
        parse_time_parameter(value, "America/Regina", "feature_engineering.end")
    assert repr(value) in str(error.value)


@pytest.mark.parametrize(
    ("value", "timezone", "message"),
    [
        ("2026-11-01 01:30", "America/New_York", "ambiguous or does not exist"),
        ("2026-03-08 02:30", "America/New_York", "ambiguous or does not exist"),
        ("2026-03-02 12:00", "Nowhere/City", "source timezone 'Nowhere/City' is unknown"),
    ],
)
def test_a_naive_time_parameter_the_source_timezone_cannot_place_is_named(value, timezone, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_time_parameter(value, timezone, "inference.start")
    assert f"inference.start={value!r}" in str(error.value)
