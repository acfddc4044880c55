"""Issue #15 item 12: a non-UTF-8 byte or an empty raw file fails naming the file and the line."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DatasetError

from geo_busyness.datasets import CSVDataset


def _rows(n: int) -> list[bytes]:
    return [f"2026-01-05T10:{i % 60:02d}:00,50.45,-104.6\n".encode() for i in range(n)]


def test_undecodable_lines_are_named(tmp_path):
    lines = [b"courier_location_timestamp,courier_lat,courier_lon\n", *_rows(100)]
    lines[20] = b"2026-01-05T10:00:00,50.45,-104.6\xff\n"
    lines[70] = b"2026-01-05T10:\xe9:00,50.45,-104.6\n"
    path = tmp_path / "events.csv"
    path.write_bytes(b"".join(lines))
    with pytest.raises(DatasetError) as failed:
        CSVDataset(filepath=str(path)).load()
    message = str(failed.value)
    assert str(path) in message
    assert "line(s) 21, 71" in message
    assert "2 line(s) in all" in message


def test_an_empty_file_names_the_file_and_what_was_expected(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"")
    with pytest.raises(DatasetError) as failed:
        CSVDataset(filepath=str(path)).load()
    assert str(path) in str(failed.value)
    assert "header row" in str(failed.value)


def test_a_good_file_loads_as_before(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,b\n1,2\n")
    pd.testing.assert_frame_equal(
        CSVDataset(filepath=str(path)).load(), pd.DataFrame({"a": [1], "b": [2]})
    )
