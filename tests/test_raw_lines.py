"""Issue #23 item 3: every line of a raw CSV is a row, the parser's casualties included.

One stray quote used to fold the following lines into one value (501 lines into one
``order_number``) and blank lines were skipped uncounted. ``CSVDataset`` now loads one row per
data line: a line pandas cannot read as one row is a row of nulls with ``source_line_fault``
(the reason) and ``source_line_text``, which data_processing quarantines.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kedro.io import DatasetError

from geo_busyness import raw_lines
from geo_busyness.datasets import CSVDataset
from geo_busyness.pipelines.data_processing.nodes import (
    enforce_rejected_share,
    map_to_canonical,
    split_clean_and_rejected,
)
from geo_busyness.schemas import (
    BLANK_LINE,
    CANONICAL_COLUMNS,
    LINE_FAULT,
    LINE_TEXT,
    LINE_TOO_LONG,
    STRAY_LINE_BREAK,
    UNBALANCED_QUOTE,
    CanonicalEvents,
)
from tests.pipelines.data_processing.conftest import processing_params

HEADER = ",".join(CANONICAL_COLUMNS)


def event_line(i: int) -> str:
    """Data line ``i`` of a reference-schema export (distinct order numbers and times)."""
    minute = i % 60
    return (
        f"{1000 + i % 7},{10_000_000 + i},2026-01-05T{10 + i // 60 % 10:02d}:{minute:02d}:00,"
        f"50.45,-104.6,2026-01-05T09:{minute:02d}:00,50.4501,-104.6002"
    )


def write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


def faults_of(frame: pd.DataFrame) -> list[str | None]:
    """Each row's line fault, None where the line was read."""
    if LINE_FAULT not in frame.columns:
        return [None] * len(frame)
    return [None if pd.isna(fault) else fault for fault in frame[LINE_FAULT]]


def test_a_stray_quote_quarantines_its_line_and_nothing_else(tmp_path):
    """The issue's file: quotes opened at lines 1001 and 1501 (the header is line 1)."""
    lines = [HEADER, *(event_line(i) for i in range(1500))]
    for line in (1001, 1501):
        fields = lines[line - 1].split(",")
        fields[1] = '"' + fields[1]
        lines[line - 1] = ",".join(fields)
    raw = CSVDataset(filepath=str(write(tmp_path / "events.csv", lines))).load()

    assert len(raw) == 1500  # one row per data line
    faulty = raw[raw[LINE_FAULT].notna()]
    assert faulty.index.tolist() == [999, 1499]  # source_row = line - 2
    assert set(faulty[LINE_FAULT]) == {UNBALANCED_QUOTE}
    assert faulty[LINE_TEXT].tolist() == [lines[1000], lines[1500]]
    assert raw["order_number"].dropna().astype("int64").tolist() == [
        10_000_000 + i for i in range(1500) if i not in (999, 1499)
    ]

    params = processing_params(as_of="2026-06-01T00:00:00Z")
    canonical = CanonicalEvents.validate(map_to_canonical(raw, params["column_mapping"]))
    clean, rejected = split_clean_and_rejected(canonical, params)
    _, report = enforce_rejected_share(clean, rejected, 0.05)
    assert report["rows_in"] == 1500
    assert report["rejected_by_reason"] == {UNBALANCED_QUOTE: 2}
    assert report["rejected_by_reason_and_column"] == [
        {"reason": UNBALANCED_QUOTE, "column": "source_line", "rows": 2}
    ]
    assert rejected["source_row"].tolist() == [999, 1499]
    assert rejected[LINE_TEXT].tolist() == [lines[1000], lines[1500]]
    assert LINE_FAULT not in clean.columns
    assert clean["order_number"].astype(str).str.len().max() == 8


def test_blank_lines_are_counted_rows(tmp_path):
    lines = [HEADER, event_line(0), "", event_line(1), "   \t", event_line(2), "\r", ""]
    raw = CSVDataset(filepath=str(write(tmp_path / "events.csv", lines))).load()
    assert len(raw) == len(lines) - 1
    assert faults_of(raw) == [None, BLANK_LINE, None, BLANK_LINE, None] + [BLANK_LINE] * 2
    assert raw["order_number"].notna().tolist() == [True, False, True, False, True, False, False]


def test_a_carriage_return_inside_a_line_is_one_faulty_row(tmp_path):
    lines = [HEADER, event_line(0), event_line(1).replace(",50.45,", ",50.45\r,"), event_line(2)]
    raw = CSVDataset(filepath=str(write(tmp_path / "events.csv", lines, "\r\n"))).load()
    assert faults_of(raw) == [None, STRAY_LINE_BREAK, None]
    assert raw["courier_lat"].tolist()[::2] == [50.45, 50.45]


@pytest.mark.parametrize("block_bytes", [64, 1000, 8 << 20])
def test_a_line_beyond_the_bound_is_one_faulty_row_read_in_bounded_memory(
    tmp_path, monkeypatch, block_bytes
):
    monkeypatch.setattr(raw_lines, "_BLOCK_BYTES", block_bytes)
    long_line = event_line(1).replace("1000", "1" * 5_000, 1)
    lines = [HEADER, event_line(0), long_line, event_line(2), long_line]
    path = write(tmp_path / "events.csv", lines)
    raw = CSVDataset(filepath=str(path), max_line_bytes=1_000).load()
    assert faults_of(raw) == [None, LINE_TOO_LONG, None, LINE_TOO_LONG]
    texts = raw[LINE_TEXT].dropna().tolist()  # the line's start
    assert len(texts) == 2
    assert all(long_line.startswith(text) and 1_000 < len(text) <= 1_024 for text in texts)
    assert raw["order_number"].dropna().tolist() == [10_000_000, 10_000_002]


def test_a_clean_file_loads_exactly_as_pandas_reads_it(tmp_path):
    lines = [HEADER, *(event_line(i) for i in range(50))]
    for line, courier in ((7, '"1,000"'), (9, '"say ""hi"", 1"'), (11, '""')):  # well quoted
        lines[line] = ",".join([courier, *lines[line].split(",")[1:]])
    path = write(tmp_path / "events.csv", lines)
    pd.testing.assert_frame_equal(CSVDataset(filepath=str(path)).load(), pd.read_csv(path))


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_every_field_quoted_after_a_byte_order_mark_loads_as_pandas_reads_it(tmp_path, bom):
    lines = ['"c0","c1"', '"1","a, b"', '"2",""']
    path = tmp_path / "events.csv"
    path.write_bytes(bom + ("\r\n".join(lines) + "\r\n").encode())
    pd.testing.assert_frame_equal(CSVDataset(filepath=str(path)).load(), pd.read_csv(path))


def test_a_gzipped_file_is_audited_too(tmp_path):
    lines = [HEADER, event_line(0), '1,"2,x', event_line(2)]
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert faults_of(CSVDataset(filepath=str(path)).load()) == [None, UNBALANCED_QUOTE, None]


def test_too_many_fields_fails_naming_the_files_own_line(tmp_path):
    lines = [HEADER, "", event_line(0), '1,"x', event_line(1) + ",extra", event_line(2)]
    path = write(tmp_path / "events.csv", lines)
    with pytest.raises(DatasetError, match=r"line 5\b") as failed:
        CSVDataset(filepath=str(path)).load()
    assert str(path) in str(failed.value)


def test_an_unreadable_header_fails_naming_line_1(tmp_path):
    path = write(tmp_path / "events.csv", ['a,"b,c', "1,2,3"])
    with pytest.raises(DatasetError, match="line 1, the header"):
        CSVDataset(filepath=str(path)).load()


def test_options_that_break_one_row_per_line_read_as_pandas_does(tmp_path):
    lines = ["# exported", HEADER, event_line(0), "", event_line(1)]
    path = write(tmp_path / "events.csv", lines)
    loaded = CSVDataset(filepath=str(path), load_args={"skiprows": 1}).load()
    pd.testing.assert_frame_equal(loaded, pd.read_csv(path, skiprows=1))


# ---------------------------------------------------------------- any file, any block size
_cells = st.text(alphabet='ab1 ,."-', max_size=6)
_good_fields = st.one_of(
    st.text(alphabet="ab1.-", max_size=6),
    _cells.map(lambda text: '"' + text.replace('"', '""') + '"'),
)
_good_lines = st.lists(_good_fields, min_size=3, max_size=3).map(lambda f: (",".join(f), True))
_bad_lines = st.one_of(
    st.sampled_from(["", "  ", "\t", "x" * 300]),  # blank, or beyond max_line_bytes below
    st.from_regex(r'[ab1,]{0,4}"[ab1,]{0,4}', fullmatch=True),  # one quote
    st.from_regex(r'[ab1]{1,3}"[ab1]{0,3}"[ab1,]{0,3}', fullmatch=True),  # mid-field quotes
    st.from_regex(r'"[ab1]{0,3}"[ab1]{1,3}', fullmatch=True),  # text after a closing quote
    st.from_regex(r"[ab1,]{0,3}\r[ab1,]{1,3}", fullmatch=True),  # a lone carriage return
).map(lambda line: (line, False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.one_of(_good_lines, _bad_lines), max_size=40),
    block_bytes=st.sampled_from([7, 50, 1 << 20]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_every_line_is_one_row_as_read_alone_or_a_faulty_row(
    tmp_path_factory, lines, block_bytes, newline
):
    path = tmp_path_factory.mktemp("lines") / "t.csv"
    text = newline.join(["c0,c1,c2", *(line for line, _ in lines)]) + newline
    path.write_bytes(text.encode())
    dataset = CSVDataset(
        filepath=str(path), load_args={"dtype": str, "keep_default_na": False}, max_line_bytes=200
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(raw_lines, "_BLOCK_BYTES", block_bytes)
        frame = dataset.load()

    assert len(frame) == len(lines)
    faults = faults_of(frame)
    assert [fault is None for fault in faults] == [good for _, good in lines]
    values = frame[["c0", "c1", "c2"]].itertuples(index=False)
    for (line, good), row in zip(lines, values, strict=True):
        if good:  # the same values as the line read on its own
            assert list(row) == next(csv.reader(io.StringIO(line), strict=True))
        else:
            assert all(pd.isna(value) for value in row)
