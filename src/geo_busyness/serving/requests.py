"""Request bodies -> validated query rows, shared by the project's server and ``code/inference.py``.

A query asks how busy the H3 cell of a point is during the hour of a timestamp. Bodies are
JSON (a list of query objects, ``{"instances": [...]}`` or one query object) or CSV with a
header row (only the query columns are read; a header wider than ``MAX_CSV_COLUMNS`` or a
body of more than ``MAX_CSV_CELLS`` cells is refused before parsing). Every problem becomes a
``RequestError`` with the HTTP status to answer and a message naming the column, the rule and
the first offending rows (0-based), so a client can fix its request; the row checks live in
``geo_busyness.model.queries``.

A JSON object body (``{"instances": [...]}`` or one query object) may also ask for
explanations: ``"explain": true`` (the top ``EXPLAIN_TOP_K`` = 3 feature contributions of each
answer) or a whole number of contributions from 0 (none) to ``MAX_EXPLAIN``.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import orjson
import pandas as pd

from geo_busyness.model.queries import RequestError, validate_queries
from geo_busyness.schemas import (
    COORDINATE_LIMITS,
    EARLIEST_TIME,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    EXPLAIN_FIELD,
    EXPLAIN_TOP_K,
    LATEST_TIME,
    MAX_EXPLAIN,
    OPTIONAL_QUERY_COLUMNS,
    QUERY_COLUMNS,
)

__all__ = [
    "OPTIONAL_QUERY_COLUMNS",
    "Invocation",
    "PlainRows",
    "RequestError",
    "check_csv_size",
    "parse_invocation",
    "parse_request",
    "plain_rows",
    "read_csv",
    "validate_queries",
]

JSON = "application/json"
CSV = "text/csv"
#: Media types accepted for request bodies (parameters such as ``charset`` are ignored).
SUPPORTED_CONTENT_TYPES = {JSON: JSON, CSV: CSV, "application/csv": CSV}
#: SageMaker real-time endpoints cap a request at 6 MB; the project's server uses the same default.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
#: A CSV header may name at most this many columns, and a CSV body hold at most this many
#: cells (rows x header columns): both are refused before parsing. A 700,000-column header
#: (5.5 MB) held the prediction thread for 50 s and took 2 GB when every column was read; the
#: largest plain query body (6 MB of 5-column rows) has about 650,000 cells.
MAX_CSV_COLUMNS = 256
MAX_CSV_CELLS = 1_000_000
#: Requests up to this many rows, all plainly valid, skip pandas' parsing (see _small_clean_queries).
_FAST_PATH_ROWS = 8
_FAST_PATH_KEYS = frozenset(QUERY_COLUMNS)
_NUMBERS = (int, float)  # exactly these types: JSON true/false are no numbers
_LAT_LIMIT, _LON_LIMIT = COORDINATE_LIMITS[EVENT_LAT], COORDINATE_LIMITS[EVENT_LON]
#: The ISO 8601 forms the fast path parses itself: date, time to at most microseconds, Z/offset.
_PLAIN_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST = EARLIEST_TIME.to_pydatetime()
_LATEST = LATEST_TIME.to_pydatetime()
_MICROSECOND = timedelta(microseconds=1)
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


@dataclass(frozen=True)
class Invocation:
    """A parsed request: its validated query rows and the contributions asked per answer."""

    queries: pd.DataFrame
    explain: int = 0


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header (``None`` or empty means JSON)."""
    if not content_type:
        return JSON
    return content_type.split(";", 1)[0].strip().lower() or JSON


def parse_request(
    body: bytes | str | None,
    content_type: str | None = JSON,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> pd.DataFrame:
    """Query rows of a request body, validated (``parse_invocation``'s rows)."""
    return parse_invocation(body, content_type, max_bytes).queries


def parse_invocation(
    body: bytes | str | None,
    content_type: str | None = JSON,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Invocation:
    """Query rows of a request body, validated, and its ``explain`` option; raises
    ``RequestError`` naming the problem.

    The rows have columns ``courier_location_timestamp`` (UTC), ``courier_lat`` and
    ``courier_lon`` (float), plus ``restaurant_lat``/``restaurant_lon`` when the request has
    them, with a fresh 0-based index (the row numbers used in error messages).
    """
    kind = SUPPORTED_CONTENT_TYPES.get(media_type(content_type))
    if kind is None:
        raise RequestError(
            415,
            f"Unsupported content type {content_type!r}; send {JSON} or {CSV} (with a header row).",
        )
    if isinstance(body, str):
        body = body.encode("utf-8")
    body = body or b""
    if len(body) > max_bytes:
        raise RequestError(
            413, f"Request body of {len(body)} bytes is over the limit of {max_bytes} bytes."
        )
    if not body.strip():
        raise RequestError(400, "Empty request body: send at least one query row.")
    if kind == CSV:
        return Invocation(validate_queries(read_csv(body)))
    document, explain = json_request(body)
    fast = _small_clean_queries(document)
    return Invocation(fast if fast is not None else validate_queries(json_frame(document)), explain)


def json_rows(body: bytes) -> list[Any]:
    """The non-empty list of query rows of a JSON body (a list, instances or one object)."""
    return json_request(body)[0]


def json_request(body: bytes) -> tuple[list[Any], int]:
    """The non-empty list of query rows of a JSON body (a list, instances or one object) and
    the contributions its ``explain`` option asks for (0 when absent)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"Malformed JSON: {exc}.") from None
    explain = 0
    if isinstance(document, dict):
        if EXPLAIN_FIELD in document:
            explain = explain_option(document[EXPLAIN_FIELD])
        if "instances" in document:
            document = document["instances"]
        elif set(QUERY_COLUMNS) & document.keys():
            document = [{key: document[key] for key in _KEPT_KEYS if key in document}]
    if not isinstance(document, list):
        raise RequestError(
            400,
            'Expected a JSON list of query objects or {"instances": [...]}, got '
            f"{type(document).__name__}.",
        )
    if not document:
        raise RequestError(400, "No query rows: the list of instances is empty.")
    return document, explain


def explain_option(value: Any) -> int:
    """Contributions per answer asked by an ``explain`` value: ``true`` means
    ``EXPLAIN_TOP_K``, ``false`` none, a whole number 0..``MAX_EXPLAIN`` that many."""
    if value is True:
        return EXPLAIN_TOP_K
    if value is False:
        return 0
    if type(value) is int and 0 <= value <= MAX_EXPLAIN:
        return value
    shown = orjson.dumps(value).decode()
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    raise RequestError(
        400,
        f"Invalid '{EXPLAIN_FIELD}' option {shown}: send true (the top {EXPLAIN_TOP_K} feature"
        f" contributions of each answer), false, or a whole number from 0 to {MAX_EXPLAIN}.",
    )


def json_frame(document: list[Any]) -> pd.DataFrame:
    """JSON query rows as a raw frame; refuses rows that are not objects."""
    if not all(type(row) is dict for row in document):
        raise RequestError(
            400, f"Each query must be a JSON object with fields {list(QUERY_COLUMNS)}."
        )
    if any(EXPLAIN_FIELD in row for row in document):
        raise RequestError(
            400,
            f"'{EXPLAIN_FIELD}' is an option of the whole request, not of a query row: send"
            f' {{"instances": [...], "{EXPLAIN_FIELD}": true}}.',
        )
    # Only the fields a query can use are kept: rows with distinct other keys would otherwise
    # build a rows x keys frame (a 136 KiB body of such rows took 1.3 GB).
    document = [{key: row[key] for key in _KEPT_KEYS if key in row} for row in document]
    try:
        frame = pd.DataFrame(document, columns=[k for k in _KEPT_KEYS if _any_has(document, k)])
    except (TypeError, ValueError):
        raise RequestError(
            400, f"Each query must be a JSON object with fields {list(QUERY_COLUMNS)}."
        ) from None
    if not all(isinstance(name, str) for name in frame.columns):  # loops over columns only
        raise RequestError(
            400, f"Each query must be a JSON object with fields {list(QUERY_COLUMNS)}."
        )
    return frame


#: JSON fields and CSV columns read from a query row (others are ignored).
_KEPT_KEYS = (*QUERY_COLUMNS, *OPTIONAL_QUERY_COLUMNS)
_KEPT_KEYS_SET = frozenset(_KEPT_KEYS)


def _any_has(rows: list[dict[str, Any]], key: str) -> bool:
    return any(key in row for row in rows)


class PlainRows(NamedTuple):
    """The rows of a small, plainly valid request before any frame is built: UTC time in
    microseconds since the epoch, latitude and longitude (degrees)."""

    micros: list[int]
    lat: list[float]
    lon: list[float]


def plain_rows(document: list[Any]) -> PlainRows | None:
    """The rows of a small request whose values are all plainly valid, else None.

    Up to ``_FAST_PATH_ROWS`` rows of exactly the required fields, ISO text times in
    [``EARLIEST_TIME``, ``LATEST_TIME``) and numeric in-range coordinates (a loop over at most
    8 rows); anything else is left to the general path, which also words the errors.
    """
    if not 0 < len(document) <= _FAST_PATH_ROWS:
        return None
    rows = [_plain_row(row) for row in document]
    if None in rows:
        return None
    micros, lat, lon = (list(column) for column in zip(*rows, strict=True))
    return PlainRows(micros, lat, lon)


def _plain_row(row: Any) -> tuple[int, float, float] | None:
    """(UTC microseconds, lat, lon) of one plainly valid query row, else None."""
    if type(row) is not dict or row.keys() != _FAST_PATH_KEYS:
        return None
    text, lat, lon = row[EVENT_TIME], row[EVENT_LAT], row[EVENT_LON]
    if not (type(lat) in _NUMBERS and type(lon) in _NUMBERS and type(text) is str):
        return None
    lat, lon = float(lat), float(lon)
    moment = _plain_time(text)
    if moment is None or not (abs(lat) <= _LAT_LIMIT and abs(lon) <= _LON_LIMIT):
        return None  # NaN coordinates fail too
    return (moment - _EPOCH) // _MICROSECOND, lat, lon


def _plain_time(text: str) -> datetime | None:
    """A plain ISO 8601 time (naive = UTC) in [``EARLIEST_TIME``, ``LATEST_TIME``), else None
    (e.g. month 13, or a time nanoseconds cannot hold: the general path words the error)."""
    if not _PLAIN_ISO_TIME.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if _EARLIEST <= moment < _LATEST else None


def _small_clean_queries(document: list[Any]) -> pd.DataFrame | None:
    """Typed query rows of a small request whose values are all plainly valid, else None.

    Building and parsing a pandas frame costs about a millisecond, most of a single-row
    request's time: ``plain_rows`` types such rows itself, and both paths give identical frames.
    """
    plain = plain_rows(document)
    if plain is None:
        return None
    stamps = np.asarray(plain.micros, dtype="datetime64[us]").astype("datetime64[ns]")
    return pd.DataFrame(
        {
            EVENT_TIME: pd.DatetimeIndex(stamps, dtype=_UTC_NS),
            EVENT_LAT: np.asarray(plain.lat, dtype=float),
            EVENT_LON: np.asarray(plain.lon, dtype=float),
        },
        index=pd.RangeIndex(len(document)),
    )


def read_csv(body: bytes) -> pd.DataFrame:
    """A CSV body with a header row as a raw frame of the query columns it has (others are
    skipped, as a JSON row's other keys are); refused before parsing when wider than
    ``MAX_CSV_COLUMNS`` or larger than ``MAX_CSV_CELLS`` (``check_csv_size``), and refused
    when a row has more fields than the header."""
    check_csv_size(body)
    # Skipping columns also skips pandas' check of rows longer than the header: a body
    # without quotes is checked here, one with quotes is read whole (bounded above).
    plain = b'"' not in body
    if plain:
        _check_row_widths(body)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(body),
                index_col=False,
                skipinitialspace=True,
                usecols=_KEPT_KEYS_SET.__contains__ if plain else None,
            )
    except pd.errors.EmptyDataError:
        raise RequestError(
            400, "Empty CSV: send a header row and at least one query row."
        ) from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RequestError(400, f"Malformed CSV: {message}.") from None
    return frame[[name for name in frame.columns if name in _KEPT_KEYS_SET]]


def _check_row_widths(body: bytes) -> None:
    """Refuse (400) an unquoted CSV body with a row of more fields than its header."""
    data = np.frombuffer(body, dtype=np.uint8)
    line_ends = np.flatnonzero(data == ord("\n"))
    commas = np.flatnonzero(data == ord(","))
    bounds = np.concatenate([[0], line_ends + 1, [len(data)]])
    per_line = np.diff(np.searchsorted(commas, bounds))
    wider = np.flatnonzero(per_line[1:] > per_line[0])
    if wider.size:
        line = int(wider[0]) + 2  # 1-based, after the header
        raise RequestError(
            400,
            f"Malformed CSV: Expected {per_line[0] + 1} fields in line {line},"
            f" saw {per_line[line - 1] + 1}.",
        )


def check_csv_size(body: bytes) -> None:
    """Refuse (400) a CSV body whose header has more than ``MAX_CSV_COLUMNS`` columns or whose
    rows x header columns exceed ``MAX_CSV_CELLS``, counting separators only (no parsing):
    quoted commas and line breaks count too, so the counts are upper bounds."""
    header_end = body.find(b"\n")
    header_end = len(body) if header_end < 0 else header_end
    columns = body.count(b",", 0, header_end) + 1
    if columns > MAX_CSV_COLUMNS:
        raise RequestError(
            400,
            f"CSV header has {columns:,} columns; at most {MAX_CSV_COLUMNS} are accepted"
            f" (a query needs {', '.join(QUERY_COLUMNS)}).",
        )
    rows = body.count(b"\n", header_end + 1) + (not body.endswith(b"\n"))
    if rows * columns > MAX_CSV_CELLS:
        raise RequestError(
            400,
            f"CSV body has up to {rows * columns:,} cells ({rows:,} rows x {columns} columns);"
            f" at most {MAX_CSV_CELLS:,} are accepted: send fewer rows or only the query columns.",
        )
