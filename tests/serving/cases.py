"""Request bodies shared by the parser tests and the live-server tests."""

from __future__ import annotations

import orjson

TS = "courier_location_timestamp"
GOOD_ROW = {TS: "2026-01-05T12:30:00Z", "courier_lat": 50.45, "courier_lon": -104.6}


def json_rows(*rows: dict) -> bytes:
    return orjson.dumps(list(rows))


def explained(value, rows: tuple[dict, ...] = (GOOD_ROW,)) -> bytes:
    """``{"instances": rows, "explain": value}``."""
    return orjson.dumps({"instances": list(rows), "explain": value})


def with_value(column: str, value) -> bytes:
    """Two good rows and a third whose ``column`` is ``value``."""
    return json_rows(GOOD_ROW, GOOD_ROW, {**GOOD_ROW, column: value})


#: (id, body, content type, expected status, fragment of the error message)
BAD_REQUESTS = [
    ("malformed-json", b'[{"courier_lat": 50.4,', "application/json", 400, "Malformed JSON"),
    ("json-not-a-list", b'"hello"', "application/json", 400, "Expected a JSON list"),
    ("json-rows-not-objects", b"[[1, 2, 3]]", "application/json", 400, "JSON object"),
    ("json-mixed-rows", b'[{"courier_lat": 1}, 5]', "application/json", 400, "JSON object"),
    ("empty-instances", b'{"instances": []}', "application/json", 400, "No query rows"),
    (
        "missing-column",
        json_rows({TS: "2026-01-05T12:00:00Z", "courier_lat": 50.4}),
        "application/json",
        400,
        "courier_lon",
    ),
    (
        "lat-not-a-number",
        with_value("courier_lat", "north"),
        "application/json",
        400,
        "Wrong type in 'courier_lat'",
    ),
    (
        "lat-boolean",
        with_value("courier_lat", True),
        "application/json",
        400,
        "Wrong type in 'courier_lat'",
    ),
    (
        "lon-object",
        with_value("courier_lon", {"deg": 1}),
        "application/json",
        400,
        "Wrong type in 'courier_lon'",
    ),
    (
        "lat-null",
        with_value("courier_lat", None),
        "application/json",
        400,
        "Missing value in 'courier_lat' in 1 row(s): 2",
    ),
    (
        "lat-out-of-range",
        with_value("courier_lat", 91.0),
        "application/json",
        400,
        "'courier_lat' out of range [-90, 90] in 1 row(s): 2",
    ),
    (
        "lon-out-of-range",
        with_value("courier_lon", -180.5),
        "application/json",
        400,
        "'courier_lon' out of range",
    ),
    (
        "restaurant-lat-out-of-range",
        with_value("restaurant_lat", 100),
        "application/json",
        400,
        "'restaurant_lat' out of range",
    ),
    (
        "unparsable-timestamp",
        with_value(TS, "yesterday at noon"),
        "application/json",
        400,
        "Unparsable timestamp in 'courier_location_timestamp' in 1 row(s): 2",
    ),
    (
        "timestamp-wrong-type",
        with_value(TS, [2026, 1, 5]),
        "application/json",
        400,
        "Wrong type in 'courier_location_timestamp'",
    ),
    (
        "timestamp-null",
        with_value(TS, None),
        "application/json",
        400,
        "Missing value in 'courier_location_timestamp'",
    ),
    ("empty-body", b"", "application/json", 400, "Empty request body"),
    ("blank-body", b"  \n", "text/csv", 400, "Empty request body"),
    (
        "csv-header-only",
        b"courier_location_timestamp,courier_lat,courier_lon\n",
        "text/csv",
        400,
        "No query rows",
    ),
    ("csv-no-header", b"2026-01-05T12:00:00Z,50.4,-104.6\n", "text/csv", 400, "Missing column"),
    (
        "malformed-csv",
        b"courier_location_timestamp,courier_lat,courier_lon\n"
        b'2026-01-05T12:00:00Z,50.4,-104.6\n"2026-01-05,50.4,-104.6\n',
        "text/csv",
        400,
        "Malformed CSV",
    ),
    (
        "csv-ragged",
        b"courier_location_timestamp,courier_lat,courier_lon\n"
        b"2026-01-05T12:00:00Z,50.4,-104.6\n2026-01-05T12:00:00Z,50.4,-104.6,7,8\n",
        "text/csv",
        400,
        "Malformed CSV",
    ),
    (
        "csv-lat-text",
        b"courier_location_timestamp,courier_lat,courier_lon\n2026-01-05T12:00:00Z,abc,-104.6\n",
        "text/csv",
        400,
        "Wrong type in 'courier_lat'",
    ),
    (
        "unsupported-type",
        b"courier_lat=50.4",
        "application/x-www-form-urlencoded",
        415,
        "Unsupported content type",
    ),
    *(
        (f"explain-{name}", explained(value), "application/json", 400, "Invalid 'explain' option")
        for name, value in (
            ("text", "yes"),
            ("null", None),
            ("negative", -1),
            ("too-many", 11),
            ("fraction", 2.5),
            ("list", [3]),
        )
    ),
    (
        "explain-in-a-row",
        json_rows(GOOD_ROW, {**GOOD_ROW, "explain": True}),
        "application/json",
        400,
        "'explain' is an option of the whole request, not of a query row",
    ),
]
