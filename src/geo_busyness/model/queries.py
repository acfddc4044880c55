"""Query rows -> typed rows, or the rules they break: one set of checks for every entry point.

The server refuses a request at its first broken rule (``validate_queries``: a 400 naming the
column, the rule and the first offending rows); batch inference keeps the good rows and
quarantines the others, each with the first rule it breaks (``split_queries``). Both read the
same checks, so a quarantined row is exactly one the endpoint would refuse, in the same words.
All checks are vectorised over the columns; no Python loop runs per row.

The point's checks carry the cleaning rules' reasons (``schemas``): ``swapped_coordinates``
(|lat| > 90 with |lon| <= 90, or a point outside the area whose swap lies inside it) and
``outside_service_area``. A query's service area is the model's: within ``max_distance_km``
of a cell it knows (``check_known_area``, ``split_queries(..., cells, max_distance_km)``,
``validate_model_queries``); its cells come from clean events, which lie in processing's area.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from geo_busyness.schemas import (
    COORDINATE_LIMITS,
    COORDINATES_OUT_OF_RANGE,
    EARLIEST_TIME,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    LAT_LIMIT,
    LATEST_TIME,
    MISSING_VALUE,
    OPTIONAL_QUERY_COLUMNS,
    OUTSIDE_SERVICE_AREA,
    QUERY_COLUMNS,
    REJECT_COLUMN,
    REJECT_MESSAGE,
    REJECT_REASON,
    SOURCE_ROW,
    SWAPPED_COORDINATES,
    TIMESTAMP_OUT_OF_RANGE,
    UNPARSABLE_TIMESTAMP,
    WRONG_TYPE,
    outside_time_range,
)

#: How many offending rows a message lists.
_SHOW_ROWS = 5
_ROWS = "{rows}"


class RequestError(Exception):
    """A request the server must refuse: ``status`` is the HTTP status (4xx), ``message`` why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"RequestError({self.status}, {self.message!r})"


@dataclass(frozen=True)
class Check:
    """One rule on one column: the rows breaking it, and its message (``{rows}`` to fill in)."""

    column: str
    rule: str
    broken: np.ndarray
    template: str

    def message(self, rows: str) -> str:
        return self.template.replace(_ROWS, rows)


def validate_queries(frame: pd.DataFrame) -> pd.DataFrame:
    """Check and type raw query rows; raises ``RequestError`` (400) naming the first problem.

    Returns ``courier_location_timestamp`` (UTC), ``courier_lat`` and ``courier_lon`` (float),
    plus ``restaurant_lat``/``restaurant_lon`` when present, with a fresh 0-based index (the
    row numbers used in messages). The model's area is checked apart (``check_known_area``),
    or with it (``validate_model_queries``).
    """
    columns, checks = _check(frame)
    _raise_first(checks)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)), copy=False)


def validate_model_queries(
    frame: pd.DataFrame, model: Any, max_distance_km: float | None = None
) -> pd.DataFrame:
    """``validate_queries``, then ``check_known_area`` against the model's known cells
    (``max_distance_km`` None: ``DEFAULT_MAX_DISTANCE_KM``): what an entry point holding the
    model (the SageMaker ``predict_fn``, the pyfunc) refuses, as the server does."""
    queries = validate_queries(frame)
    distance = DEFAULT_MAX_DISTANCE_KM if max_distance_km is None else max_distance_km
    check_known_area(queries, known_cells(model), distance)
    return queries


def split_queries(
    frame: pd.DataFrame, cells: np.ndarray | None = None, max_distance_km: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed valid rows (with ``source_row``) and the refused rows' positions, rule and column.

    Each refused row is named once, by the first rule it breaks in the server's order, with
    the message the server answers when that row is sent alone. With the model's known
    ``cells`` and a ``max_distance_km`` > 0, the area's checks (``area_checks``) come last,
    as the server applies them after parsing.
    """
    columns, checks = _check(frame)
    checks += area_checks(columns[EVENT_LAT], columns[EVENT_LON], cells, max_distance_km)
    first = np.full(len(frame), -1)
    for position, check in reversed(list(enumerate(checks))):  # loops over rules, not rows
        first[check.broken] = position
    refused = first >= 0
    chosen = first[refused]
    problems = pd.DataFrame(
        {
            SOURCE_ROW: np.flatnonzero(refused),
            REJECT_REASON: np.asarray([c.rule for c in checks], dtype=object)[chosen],
            REJECT_COLUMN: np.asarray([c.column for c in checks], dtype=object)[chosen],
            REJECT_MESSAGE: np.asarray([c.message(_rows([True])) for c in checks], object)[chosen],
        }
    )
    good = np.flatnonzero(~refused)
    valid = pd.DataFrame(columns, copy=False).iloc[good].reset_index(drop=True)
    valid.insert(0, SOURCE_ROW, good)
    return valid, problems


def _check(frame: pd.DataFrame) -> tuple[dict[str, Any], list[Check]]:
    """Typed columns (NaN/NaT where broken) and every check, in the order the server applies."""
    missing = [col for col in QUERY_COLUMNS if col not in frame.columns]
    if missing:
        raise RequestError(
            400,
            f"Missing column(s) {missing}: every query needs {list(QUERY_COLUMNS)}"
            " (CSV bodies need a header row).",
        )
    if frame.empty:
        raise RequestError(400, "No query rows: the body holds a header or an empty list only.")
    # Checks run on numpy arrays: pandas' per-call overhead would dominate small requests.
    times, checks = _timestamps(frame[EVENT_TIME])
    columns: dict[str, Any] = {EVENT_TIME: times}
    names = [name for name in (EVENT_LAT, EVENT_LON, *OPTIONAL_QUERY_COLUMNS) if name in frame]
    numbers = {name: _numbers(frame[name]) for name in names}
    with np.errstate(invalid="ignore"):
        swapped = (np.abs(numbers[EVENT_LAT][0]) > LAT_LIMIT) & (
            np.abs(numbers[EVENT_LON][0]) <= LAT_LIMIT
        )
    for name in names:
        columns[name], found = _coordinate_checks(
            name,
            *numbers[name],
            required=name not in OPTIONAL_QUERY_COLUMNS,
            swapped=swapped if name == EVENT_LAT else None,
        )
        checks += found
    checks.append(
        Check(
            EVENT_LAT,
            SWAPPED_COORDINATES,
            swapped,
            f"Swapped coordinates ({SWAPPED_COORDINATES}) in {_ROWS}: {EVENT_LAT!r} beyond"
            f" +-{LAT_LIMIT:g} with {EVENT_LON!r} within it makes sense only swapped (latitude"
            f" goes in {EVENT_LAT!r}, longitude in {EVENT_LON!r}).",
        )
    )
    return columns, checks


def _raise_first(checks: list[Check]) -> None:
    """``RequestError`` (400) with the first broken check's message, if any is broken."""
    for check in checks:
        if check.broken.any():
            raise RequestError(400, check.message(_rows(check.broken)))


def _rows(mask: np.ndarray | pd.Series | list[bool]) -> str:
    """'3 row(s): 3, 7, ...' for the first offending row numbers of a boolean mask."""
    rows = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(row) for row in rows[:_SHOW_ROWS])
    more = f" and {len(rows) - _SHOW_ROWS} more" if len(rows) > _SHOW_ROWS else ""
    return f"{len(rows)} row(s): {shown}{more}"


def is_number_dtype(values: pd.Series) -> bool:
    """Numbers, not booleans (JSON true/false must not pass as 1/0)."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A coordinate column as float degrees (NaN where missing or not a number), with the
    masks of missing values and of values that are not numbers."""
    if is_number_dtype(values):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(numbers)
        wrong = np.zeros(len(values), dtype=bool)
    else:
        raw = values.to_numpy(dtype=object)
        missing = _missing(raw)
        if infer_dtype(raw, skipna=True) not in (
            "string",
            "floating",
            "integer",
            "mixed-integer-float",
        ):
            # JSON true/false must not pass as 1/0, and lists or objects are no numbers: only
            # numbers and text go on to the numeric conversion (a type check per value, for
            # columns that are not plainly text or numbers).
            scalar = _of_types(raw, _NUMBER_OR_TEXT)
            raw = np.where(scalar | missing, raw, "not a number")
        numbers = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        )
        wrong = np.isnan(numbers) & ~missing
    return numbers, missing, wrong


def _coordinate_checks(  # noqa: PLR0913 - a column's values and masks, and how to judge them
    name: str,
    numbers: np.ndarray,
    missing: np.ndarray,
    wrong: np.ndarray,
    *,
    required: bool,
    swapped: np.ndarray | None,
) -> tuple[np.ndarray, list[Check]]:
    """A coordinate column's typed values (NaN where refused) and its checks: numeric,
    present, in range (rows of ``swapped`` are not out of range: they have their own check)."""
    limit = COORDINATE_LIMITS[name]
    with np.errstate(invalid="ignore"):
        outside = ~np.isnan(numbers) & ~((numbers >= -limit) & (numbers <= limit))
    if swapped is not None:
        outside &= ~swapped
    checks = [
        Check(
            name,
            WRONG_TYPE,
            wrong,
            f"Wrong type in {name!r}: expected numbers (degrees) in {_ROWS}.",
        )
    ]
    if required:
        checks.append(Check(name, MISSING_VALUE, missing, f"Missing value in {name!r} in {_ROWS}."))
    checks.append(
        Check(
            name,
            COORDINATES_OUT_OF_RANGE,
            outside,
            f"{name!r} out of range [-{limit:g}, {limit:g}] in {_ROWS}.",
        )
    )
    refused = wrong | outside | (swapped if swapped is not None else False)
    return np.where(refused, np.nan, numbers), checks


def _timestamps(values: pd.Series) -> tuple[pd.DatetimeIndex, list[Check]]:
    """Query times as UTC (ISO 8601 text, naive = UTC, offsets converted; or Unix seconds).

    Times are parsed at microsecond or finer resolution (nothing wraps), then times outside
    ``EARLIEST_TIME``..``LATEST_TIME`` are refused as out of range before the conversion to
    nanoseconds, which would otherwise fail or wrap into another century.
    """
    raw = values.to_numpy(dtype=object) if values.dtype == object else None
    missing = _missing(raw) if raw is not None else values.isna().to_numpy()
    wrong = np.zeros(len(values), dtype=bool)
    not_a_time = np.zeros(len(values), dtype=bool)  # numbers no time can be (inf, 1e300)
    kind = "datetime"
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    elif is_number_dtype(values):
        seconds = values.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            # Beyond +-1e13 s (~317,000 years) pandas cannot hold the time even in microseconds.
            seconds = np.where(np.abs(seconds) < 1e13, seconds, np.nan)
        finite = np.isfinite(seconds)
        parsed = pd.DatetimeIndex(
            pd.to_datetime(np.where(finite, seconds, np.nan), unit="s", utc=True, errors="coerce")
        )
        not_a_time = ~finite & ~missing
    else:
        raw = values.to_numpy(dtype=object)
        kind = infer_dtype(raw, skipna=True)
        if kind != "string":
            text = _of_types(raw, (str,))
            wrong = ~text & ~missing
            raw = np.where(wrong, None, raw)
        parsed = _parse_iso(raw)
    far = outside_time_range(parsed) | not_a_time
    unparsable = np.asarray(parsed.isna()) & ~missing & ~wrong & ~far
    checks = [
        Check(EVENT_TIME, MISSING_VALUE, missing, f"Missing value in {EVENT_TIME!r} in {_ROWS}."),
        Check(
            EVENT_TIME,
            WRONG_TYPE,
            wrong,
            f"Wrong type in {EVENT_TIME!r}: expected ISO 8601 text or Unix seconds, got"
            f" {kind} values in {_ROWS}.",
        ),
        Check(
            EVENT_TIME,
            UNPARSABLE_TIMESTAMP,
            unparsable,
            f"Unparsable timestamp in {EVENT_TIME!r} in {_ROWS}: expected ISO 8601 "
            "(e.g. 2026-01-05T12:30:00Z; naive times are UTC) or Unix seconds.",
        ),
        Check(
            EVENT_TIME,
            TIMESTAMP_OUT_OF_RANGE,
            far,
            f"Timestamp out of range in {EVENT_TIME!r} in {_ROWS}: times from "
            f"{EARLIEST_TIME:%Y-%m-%d} to before {LATEST_TIME:%Y-%m-%d} UTC are served "
            "(numbers are Unix seconds, not milliseconds).",
        ),
    ]
    safe = parsed.where(~far)  # NaT where out of range: the nanosecond conversion cannot wrap
    return safe.as_unit("ns"), checks


#: Python types a coordinate value may have before its numeric conversion (not bool).
_NUMBER_OR_TEXT = (int, float, str, np.floating, np.integer)


def _of_types(raw: np.ndarray, types: tuple[type, ...]) -> np.ndarray:
    """Mask of the values of an object array whose type is one of ``types`` (bool never is)."""
    return np.fromiter(
        (isinstance(value, types) and not isinstance(value, bool | np.bool_) for value in raw),
        dtype=bool,
        count=len(raw),
    )


def _missing(raw: np.ndarray) -> np.ndarray:
    """Mask of null values (None, NaN, NaT) of an object array; lists and dicts are not null."""
    try:
        return np.asarray(pd.isna(raw), dtype=bool)
    except (TypeError, ValueError):  # pragma: no cover - pd.isna handles object arrays
        return np.fromiter((value is None for value in raw), dtype=bool, count=len(raw))


def _parse_iso(raw: np.ndarray) -> pd.DatetimeIndex:
    """ISO 8601 text as UTC times (NaT where unparsable), at the resolution pandas picks."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601"))
    except (OverflowError, ValueError):  # a value pandas cannot even coerce: one by one
        return pd.DatetimeIndex(
            [_parse_one(value) for value in raw], dtype=pd.DatetimeTZDtype("us", "UTC")
        )


def _parse_one(value: Any) -> pd.Timestamp:
    try:
        return pd.to_datetime(value, utc=True, errors="coerce", format="ISO8601").as_unit("us")
    except (OverflowError, ValueError):
        return pd.NaT


# ---------------------------------------------------------------- the model's service area
#: Default of the largest distance (km) from a query to the nearest known cell's centre.
DEFAULT_MAX_DISTANCE_KM = 20.0
_EARTH_RADIUS_KM = 6372.8
_TREES: dict[int, tuple[np.ndarray, Any]] = {}


def known_cells(model: Any) -> np.ndarray | None:
    """The H3 cells (uint64) a model knows (the forecaster's ``history_.cells``), or None if
    it does not say (a wrapper is not opened here: a fault in it belongs to the prediction,
    which reports it as a model fault, not to the request's validation)."""
    found = getattr(getattr(model, "history_", None), "cells", None)
    return np.asarray(found) if found is not None and len(found) else None


def distance_to_known_km(lat: np.ndarray, lon: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Great-circle distance (km) from each point to the nearest centre of ``cells``
    (a ball tree over the centres, built once per cells array: O(rows x log cells))."""
    key = id(cells)
    cached = _TREES.get(key)
    if cached is None or cached[0] is not cells:
        from sklearn.neighbors import BallTree  # noqa: PLC0415

        from geo_busyness.model.geo import cell_centres  # noqa: PLC0415

        centre_lat, centre_lon = cell_centres(cells)
        tree = BallTree(np.radians(np.column_stack([centre_lat, centre_lon])), metric="haversine")
        _TREES.clear()  # one model per process: keep one tree
        _TREES[key] = cached = (cells, tree)
    points = np.radians(np.column_stack([np.asarray(lat, float), np.asarray(lon, float)]))
    distance, _ = cached[1].query(points, k=1)
    return distance[:, 0] * _EARTH_RADIUS_KM


def area_checks(
    lat: np.ndarray, lon: np.ndarray, cells: np.ndarray | None, max_distance_km: float | None
) -> list[Check]:
    """The model's service area as checks on typed coordinates (NaN: refused before, not
    judged here): ``swapped_coordinates`` where the point is farther than ``max_distance_km``
    from every known cell and its swap (latitude <-> longitude) is not, else
    ``outside_service_area`` where it is far. No checks without cells or with a distance of
    None or <= 0 (the area check is off)."""
    if cells is None or not max_distance_km or max_distance_km <= 0:
        return []
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    located = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
    far = np.zeros(len(lat), dtype=bool)
    if len(located):
        far[located] = distance_to_known_km(lat[located], lon[located], cells) > max_distance_km
    # A swap is a point only where the longitude can be a latitude.
    candidates = np.flatnonzero(far & (np.abs(np.where(far, lon, 0.0)) <= LAT_LIMIT))
    swapped = np.zeros(len(lat), dtype=bool)
    if len(candidates):
        near = distance_to_known_km(lon[candidates], lat[candidates], cells) <= max_distance_km
        swapped[candidates[near]] = True
    within = f"{max_distance_km:g} km"
    return [
        Check(
            EVENT_LAT,
            SWAPPED_COORDINATES,
            swapped,
            f"Swapped coordinates ({SWAPPED_COORDINATES}) in {_ROWS}: the point is farther than"
            f" {within} from every cell the model knows and lies within {within} of one with"
            f" {EVENT_LAT!r} and {EVENT_LON!r} swapped (latitude goes in {EVENT_LAT!r}).",
        ),
        Check(
            EVENT_LAT,
            OUTSIDE_SERVICE_AREA,
            far & ~swapped,
            f"Outside the service area ({OUTSIDE_SERVICE_AREA}) in {_ROWS}: farther than"
            f" {within} from every cell the model was trained on, with {EVENT_LAT!r} and"
            f" {EVENT_LON!r} as given or swapped.",
        ),
    ]


def check_known_area(
    queries: pd.DataFrame, cells: np.ndarray | None, max_distance_km: float | None
) -> None:
    """Refuse (``RequestError`` 400) typed query rows outside the model's service area
    (``area_checks``: swapped coordinates first, then too far from every known cell); no
    check without cells or with a distance of None or <= 0."""
    if queries.empty:
        return
    _raise_first(area_checks(queries[EVENT_LAT], queries[EVENT_LON], cells, max_distance_km))
