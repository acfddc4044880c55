"""Issue #25 item 2: the fast timestamp paths give what the checked ones gave.

Text with the 'YYYY-MM-DDTHH:MM:SS' layout is parsed by Arrow's strict cast (not strptime plus
a cross-check), and local times are placed in the source's zone once per local hour (not per
row): both must agree with the slow paths to the microsecond, masks included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from geo_busyness.pipelines.data_processing import nodes
from geo_busyness.pipelines.data_processing.nodes import (
    _cast_iso_block,
    _local_to_utc,
    _localise_rows,
    _parse_timestamps,
)

US = "datetime64[us]"
#: Values without the layout: left to the checked path (pandas).
OTHER_LAYOUTS = ["2026-01-05 10:30:00", "2026-01-05T10:30:00Z", "2026-1-05T10:30:00", "", None]


def _strptime_parse(text: pa.Array) -> np.ndarray:
    """What the checked path gives for text it accepts: strptime, NaT elsewhere."""
    parsed = pc.strptime(text, format="%Y-%m-%dT%H:%M:%S", unit="us", error_is_null=True)
    return parsed.to_numpy(zero_copy_only=False).astype(US)


def _times(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    stamps = np.datetime64("2026-01-01T00:00:00") + rng.integers(0, 400 * 86400, n).astype("m8[s]")
    return list(np.datetime_as_string(stamps, unit="s"))


@pytest.mark.parametrize("string_type", [pa.string(), pa.large_string()])
def test_the_cast_reads_every_value_with_the_layout_as_strptime_does(string_type):
    """The others are left NaT for pandas (strptime took the unpadded month, which the strict
    cast then refused: the whole column used to go to pandas for it)."""
    values = np.array(_times(500) + OTHER_LAYOUTS * 3, dtype=object)
    text = pa.array(np.random.default_rng(1).permutation(values)).cast(string_type)
    text = text.slice(3)  # an offset into the buffers
    fast = _cast_iso_block(text)
    assert fast is not None
    layout = np.array([v is not None and len(v) == 19 and v[10] == "T" for v in text.to_pylist()])
    np.testing.assert_array_equal(fast[layout], _strptime_parse(text)[layout])
    assert not np.isnat(fast[layout]).any()
    assert np.isnat(fast[~layout]).all()


@pytest.mark.parametrize(
    "value",
    ["2026-02-30T12:00:00", "2026-12-31T23:59:60", "1850-01-01T00:00:00", "0000-01-01T00:00:00"],
)
def test_a_value_the_cast_refuses_or_far_off_sends_the_block_the_checked_way(value):
    assert _cast_iso_block(pa.array([*_times(10), value])) is None


def test_text_without_the_layout_is_left_to_the_checked_way():
    assert _cast_iso_block(pa.array(["31/12/2026 10:00", None])) is None


@pytest.mark.parametrize(
    "timezone",
    ["America/Toronto", "Australia/Lord_Howe", "America/St_Johns", "Europe/London", "UTC"],
)
def test_local_times_are_placed_as_pandas_places_each_row(timezone):
    """Around every DST change of 2026 (Lord Howe moves by 30 minutes, St John's changes at
    a half-hour offset): each local time's UTC instant and whether it is ambiguous or skipped."""
    rng = np.random.default_rng(2)
    days = ["2026-03-08", "2026-03-29", "2026-04-05", "2026-10-04", "2026-10-25", "2026-11-01"]
    naive = np.concatenate(
        [np.datetime64(day, "us") + rng.integers(0, 6 * 3600, 400).astype("m8[s]") for day in days]
    )
    naive[::37] = np.datetime64("NaT")
    expected = _localise_rows(naive, timezone)
    utc, ambiguous = _local_to_utc(naive, timezone)
    np.testing.assert_array_equal(utc, expected)
    np.testing.assert_array_equal(ambiguous, ~np.isnat(naive) & np.isnat(expected))
    assert ambiguous.any() == (timezone != "UTC")


def test_a_span_too_wide_for_the_hour_table_is_placed_row_by_row(monkeypatch):
    monkeypatch.setattr(nodes, "_MAX_HOUR_TABLE", 2)
    naive = np.array(["2026-03-08T02:30", "2026-03-09T12:00", "NaT"], dtype=US)
    utc, ambiguous = _local_to_utc(naive, "America/Toronto")
    np.testing.assert_array_equal(utc, np.array(["NaT", "2026-03-09T16:00", "NaT"], dtype=US))
    np.testing.assert_array_equal(ambiguous, [True, False, False])


def test_an_unknown_zone_fails_even_without_a_parsed_time():
    with pytest.raises(Exception, match="Nowhere/City"):
        _parse_timestamps(pd.Series(["not a time"]), "ISO8601", "Nowhere/City")


def test_a_parsed_column_is_not_changed_in_place():
    times = pd.Series(pd.to_datetime(["2026-01-05T10:30:00", "2500-01-01T00:00:00"]).as_unit("us"))
    before = times.copy()
    _, _, far = _parse_timestamps(times, "ISO8601", "America/Regina")
    assert far.tolist() == [False, True]
    pd.testing.assert_series_equal(times, before)


def test_local_times_before_1970_are_placed_as_pandas_places_each_row():
    """Hours before the epoch are negative int64 counts: the hour table's index must floor them
    as numpy floors datetimes (Toronto's DST change of 1955-04-24, the hours around 1970)."""
    rng = np.random.default_rng(3)
    spring = np.datetime64("1955-04-20", "us") + rng.integers(0, 10 * 86400 * 10**6, 2000).astype(
        "m8[us]"
    )
    epoch = np.datetime64("1969-12-31T22:00", "us") + rng.integers(0, 4 * 3600 * 10**6, 200).astype(
        "m8[us]"
    )
    naive = np.concatenate([spring, epoch])
    naive[::41] = np.datetime64("NaT")
    expected = _localise_rows(naive, "America/Toronto")
    utc, ambiguous = _local_to_utc(naive, "America/Toronto")
    np.testing.assert_array_equal(utc, expected)
    np.testing.assert_array_equal(ambiguous, ~np.isnat(naive) & np.isnat(expected))
    assert ambiguous.any()


@pytest.mark.parametrize("text", [["not a time", None], ["2199-12-31T23:00:00", "x"]])
def test_local_times_placed_by_pandas_read_only_are_not_written_to(monkeypatch, text):
    """Local times pandas places row by row come back as a read-only view (no parsed time at
    all, or a span too wide for the hour table); out-of-range rows are set to NaT in a copy."""
    monkeypatch.setattr(nodes, "_MAX_HOUR_TABLE", 0)
    parsed, _, far = _parse_timestamps(pd.Series(text), "ISO8601", "Pacific/Honolulu")
    assert parsed.isna().all()
    assert far.tolist() == [text[0] != "not a time", False]  # UTC-10: past 2200-01-01 UTC
