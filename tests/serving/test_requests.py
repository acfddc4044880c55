"""Request parsing and validation: every accepted shape, every refusal with its status."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pandas as pd
import pytest

from geo_busyness.serving import requests
from geo_busyness.serving.requests import RequestError, parse_invocation, parse_request
from tests.serving.cases import BAD_REQUESTS, GOOD_ROW, TS, explained, json_rows


@pytest.mark.parametrize(
    "body",
    [
        json_rows(GOOD_ROW),
        orjson.dumps({"instances": [GOOD_ROW]}),
        orjson.dumps(GOOD_ROW),
    ],
    ids=["list", "instances", "single-object"],
)
def test_json_shapes_give_the_same_rows(body):
    frame = parse_request(body, "application/json; charset=utf-8")
    assert list(frame.columns) == [TS, "courier_lat", "courier_lon"]
    assert frame[TS].iloc[0] == pd.Timestamp("2026-01-05T12:30:00Z")
    assert frame["courier_lat"].dtype == np.float64


def test_csv_equals_json():
    csv = (
        "courier_location_timestamp,courier_lat,courier_lon,restaurant_lat,extra\n"
        "2026-01-05T12:30:00Z,50.45,-104.6,50.44,x\n"
        "2026-01-05 18:00:00-06:00,50.46,-104.61,,y\n"
    )
    rows = [
        {**GOOD_ROW, "restaurant_lat": 50.44, "extra": "x"},
        {TS: "2026-01-05T18:00:00-06:00", "courier_lat": 50.46, "courier_lon": -104.61},
    ]
    from_csv = parse_request(csv.encode(), "text/csv")
    from_json = parse_request(orjson.dumps(rows), "application/json")
    pd.testing.assert_frame_equal(from_csv, from_json)
    assert "extra" not in from_csv.columns
    # an offset is converted to UTC
    assert from_csv[TS].iloc[1] == pd.Timestamp("2026-01-06T00:00:00Z")


def test_timestamp_forms():
    rows = [
        {**GOOD_ROW, TS: "2026-01-05T12:30:00"},  # naive = UTC
        {**GOOD_ROW, TS: "2026-01-05T13:30:00+01:00"},
        {**GOOD_ROW, TS: "2026-01-05 12:30"},
    ]
    frame = parse_request(orjson.dumps(rows))
    assert (frame[TS] == pd.Timestamp("2026-01-05T12:30:00Z")).all()
    epoch = parse_request(
        orjson.dumps([{**GOOD_ROW, TS: pd.Timestamp("2026-01-05T12:30:00Z").timestamp()}])
    )
    assert epoch[TS].iloc[0] == pd.Timestamp("2026-01-05T12:30:00Z")
    assert str(frame[TS].dtype) == "datetime64[ns, UTC]"


def test_numeric_text_coordinates_are_accepted():
    frame = parse_request(json_rows({**GOOD_ROW, "courier_lat": "50.45"}))
    assert frame["courier_lat"].iloc[0] == 50.45


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_are_refused_with_a_reason(body, content_type, status, fragment):
    with pytest.raises(RequestError) as caught:
        parse_request(body, content_type)
    assert caught.value.status == status
    assert fragment in caught.value.message


def test_body_over_the_limit_is_413():
    body = json_rows(*[GOOD_ROW] * 100)
    with pytest.raises(RequestError) as caught:
        parse_request(body, "application/json", max_bytes=len(body) - 1)
    assert caught.value.status == 413
    assert len(parse_request(body, "application/json", max_bytes=len(body))) == 100


def test_error_names_the_first_rows_and_counts_the_rest():
    rows = [{**GOOD_ROW, "courier_lat": 95.0}] * 8
    with pytest.raises(RequestError, match=r"in 8 row\(s\): 0, 1, 2, 3, 4 and 3 more"):
        parse_request(json_rows(*rows))


def test_missing_content_type_means_json():
    assert len(parse_request(json_rows(GOOD_ROW), None)) == 1


_SMALL_REQUESTS = [
    [GOOD_ROW],
    [
        {TS: "2026-03-02 12:59:59.123456+05:30", "courier_lat": -90, "courier_lon": 180},
        {TS: "2026-03-02T12:00", "courier_lat": 0, "courier_lon": -0.5},
        {TS: "2026-12-31T23:59:59-09:30", "courier_lat": 89.999999, "courier_lon": -179.5},
    ],
]


@pytest.mark.parametrize("rows", _SMALL_REQUESTS, ids=["one-row", "offsets-and-bounds"])
def test_small_clean_requests_take_the_fast_path_with_identical_rows(rows, monkeypatch):
    """The fast path (small, plainly valid JSON) types rows exactly as the general path does."""
    assert requests._small_clean_queries(rows) is not None
    fast = parse_request(orjson.dumps(rows))
    monkeypatch.setattr(requests, "_small_clean_queries", lambda document: None)
    general = parse_request(orjson.dumps(rows))
    pd.testing.assert_frame_equal(fast, general)


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({**GOOD_ROW, "courier_lat": 91.0}, "out of range"),
        ({**GOOD_ROW, "courier_lat": True}, "Wrong type"),
        ({**GOOD_ROW, "courier_lon": None}, "Missing value"),
        ({**GOOD_ROW, TS: "2026-13-40T12:00:00Z"}, "Unparsable timestamp"),
        ({TS: GOOD_ROW[TS], "courier_lat": 50.0}, "Missing column"),
    ],
)
def test_small_bad_requests_get_the_general_paths_errors(row, words):
    with pytest.raises(RequestError) as caught:
        parse_request(orjson.dumps([row]))
    assert caught.value.status == 400 and words in caught.value.message


@pytest.mark.parametrize(
    ("body", "explain"),
    [
        (json_rows(GOOD_ROW), 0),
        (explained(True), 3),
        (explained(False), 0),
        (explained(0), 0),
        (explained(7), 7),
        (explained(10), 10),
        (orjson.dumps({**GOOD_ROW, "explain": 1}), 1),
    ],
    ids=["absent", "true", "false", "zero", "seven", "max", "single-object"],
)
def test_the_explain_option_asks_for_that_many_contributions(body, explain):
    """A JSON object body carries the option beside its rows; the rows are those of the same
    request without it (the single-object form keeps the fast path)."""
    invocation = parse_invocation(body)
    assert invocation.explain == explain
    pd.testing.assert_frame_equal(invocation.queries, parse_request(json_rows(GOOD_ROW)))
    assert parse_request(body).equals(invocation.queries)


def test_csv_requests_are_never_explained():
    body = (
        b"courier_location_timestamp,courier_lat,courier_lon,explain\n"
        b"2026-01-05T12:00:00Z,50.4,-104.6,true\n"
    )
    assert parse_invocation(body, "text/csv").explain == 0


CSV = "text/csv"
CSV_HEADER = "courier_location_timestamp,courier_lat,courier_lon"
CSV_ROW = "2026-01-05T12:30:00Z,50.45,-104.6"


def test_a_wide_csv_header_is_refused_before_parsing():
    """Issue #23: a 700,000-column header (5.5 MB) was parsed whole: 50 s and +2 GB."""
    body = ",".join(f"c{index}" for index in range(700_000)).encode() + b"\n"
    started = time.perf_counter()
    with pytest.raises(RequestError) as caught:
        parse_request(body, CSV)
    assert time.perf_counter() - started < 0.5
    assert caught.value.status == 400
    assert "700,000 columns; at most 256 are accepted" in caught.value.message


def test_a_header_at_the_column_bound_is_read():
    names = [CSV_HEADER, *(f"c{index}" for index in range(requests.MAX_CSV_COLUMNS - 3))]
    body = ",".join(names) + "\n" + CSV_ROW + ",x" * (requests.MAX_CSV_COLUMNS - 3) + "\n"
    frame = parse_request(body.encode(), CSV)
    assert list(frame.columns) == [TS, "courier_lat", "courier_lon"]


def test_a_csv_body_over_the_cell_bound_is_refused_before_parsing():
    """20 columns of empty cells: 1 MB of commas would make a million cells."""
    rows = requests.MAX_CSV_CELLS // 20 + 1
    header = ",".join([CSV_HEADER, *(f"c{index}" for index in range(17))])
    body = f"{header}\n" + (("," * 19) + "\n") * rows
    with pytest.raises(RequestError) as caught:
        parse_request(body.encode(), CSV)
    assert caught.value.status == 400
    assert f"({rows:,} rows x 20 columns); at most 1,000,000" in caught.value.message


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "quoted"])
def test_csv_reads_only_the_query_columns(quoted):
    """Other columns are skipped (a quoted body is read whole, then trimmed)."""
    extra = '"a, b"' if quoted else "ab"
    body = f"{CSV_HEADER},notes,restaurant_lat\n{CSV_ROW},{extra},50.44\n".encode()
    frame = requests.read_csv(body)
    assert list(frame.columns) == [TS, "courier_lat", "courier_lon", "restaurant_lat"]


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "quoted"])
def test_a_csv_row_longer_than_the_header_is_refused(quoted):
    first = f'"{CSV_ROW[:20]}"{CSV_ROW[20:]}' if quoted else CSV_ROW
    body = f"{CSV_HEADER}\n{first}\n{CSV_ROW}\n{CSV_ROW},7,8\n".encode()
    with pytest.raises(RequestError, match="Malformed CSV: .*Expected 3 fields in line 4, saw 5"):
        parse_request(body, CSV)
