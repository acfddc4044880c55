"""Map any point-event table onto the canonical schema, clean it and quarantine what fails."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.arrays import ArrowExtensionArray

from geo_busyness.cleaning_rules import (
    AREA_BINS_PER_DEGREE,
    PandasRuleEngine,
    cleaning_rules,
    located_events,
    resolve_service_area,
)
from geo_busyness.datasets import release_arrow_memory
from geo_busyness.model.geo import venue_id
from geo_busyness.schemas import (
    CANONICAL_COLUMNS,
    CLEANING_REJECT_REASONS,
    COORDINATE_COLUMNS,
    DUPLICATE_ORDER,
    EARLIEST_TIME,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    LATEST_TIME,
    LINE_FAULT,
    LINE_TEXT,
    ORDER_NUMBER,
    REJECT_COLUMN,
    REJECT_REASON,
    REQUIRED_COLUMNS,
    SOURCE_LINE,
    SOURCE_ROW,
    TIMESTAMP_COLUMNS,
    VENUE_ID,
    VENUE_LAT,
    VENUE_LON,
)

logger = logging.getLogger(__name__)

#: Reject reasons, in the order rules are applied; a row gets the first that matches.
REJECT_REASONS = CLEANING_REJECT_REASONS
#: What ``reject_column`` names: a canonical column, or the whole line for a line the CSV
#: parser could not read (``LINE_FAULT``).
REJECT_COLUMNS = (*CANONICAL_COLUMNS, SOURCE_LINE)
#: Columns the raw loader adds for lines it could not read, carried to the quarantine.
LINE_COLUMNS = (LINE_FAULT, LINE_TEXT)


class EventMappingError(ValueError):
    """The column mapping does not fit the source table."""


class DataQualityError(ValueError):
    """Too many rows were rejected for the run to go on."""


def resolve_column_mapping(
    column_mapping: dict[str, str | None], source_columns: list[str]
) -> dict[str, str]:
    """The mapping's canonical -> source pairs that are set, checked against the source's
    columns (both engines' ``map_to_canonical`` use it); ``EventMappingError`` if it does not fit.
    """
    mapping = {canonical: source for canonical, source in column_mapping.items() if source}
    unknown = sorted(set(mapping) - set(CANONICAL_COLUMNS))
    if unknown:
        raise EventMappingError(
            f"data_processing.column_mapping has unknown canonical column(s) {unknown}; "
            f"expected a subset of {list(CANONICAL_COLUMNS)}."
        )
    unmapped = [col for col in REQUIRED_COLUMNS if col not in mapping]
    if unmapped:
        raise EventMappingError(
            f"data_processing.column_mapping must map the required column(s) {unmapped}."
        )
    absent = {
        canonical: source for canonical, source in mapping.items() if source not in source_columns
    }
    if absent:
        raise EventMappingError(
            "The raw table lacks mapped column(s) "
            + ", ".join(f"{source!r} (for {canonical})" for canonical, source in absent.items())
            + f"; its columns are {source_columns}."
        )
    return mapping


def map_to_canonical(raw: pd.DataFrame, column_mapping: dict[str, str | None]) -> pd.DataFrame:
    """Rename a source table's columns to the canonical schema and number its rows.

    ``column_mapping`` maps canonical names to source column names; optional canonical columns
    left out (or mapped to null) are filled with nulls. Coordinates become float, with values
    that are not numbers turned into nulls (the cleaning node rejects them as missing). The
    raw loader's ``LINE_FAULT`` and ``LINE_TEXT`` (lines it could not read) are kept.
    """
    mapping = resolve_column_mapping(column_mapping, list(raw.columns))
    release_arrow_memory()  # what the raw table's reader freed (whatever dataset read it)
    # Columns are moved as pandas arrays, not copied: converting Arrow-backed text to numpy
    # would make a Python object per row, and copying a 10M-row table costs a gigabyte.
    columns: dict[str, Any] = {SOURCE_ROW: np.arange(len(raw), dtype=np.int64)}
    for col in CANONICAL_COLUMNS:
        if col in mapping:
            values = raw[mapping[col]].array
            if col in COORDINATE_COLUMNS and raw[mapping[col]].dtype != np.float64:
                values = pd.to_numeric(values, errors="coerce").astype(float)
        elif col in COORDINATE_COLUMNS:
            values = np.full(len(raw), np.nan)
        else:
            values = np.full(len(raw), None, dtype=object)
        columns[col] = values
    columns.update({col: raw[col].array for col in LINE_COLUMNS if col in raw.columns})
    return pd.DataFrame(columns, copy=False)


#: The timestamp layout most sources write; Arrow parses it, pandas only what does not match.
_ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"
#: ISO 8601 text ending in a UTC offset or Z after a time of day: an instant, not a local time.
_AWARE_ISO = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)\s*$"
#: Times are parsed in microseconds (+-294k years): years 1 or 9999 parse as what they are and
#: are then quarantined as out of range, instead of wrapping in nanoseconds (2500 -> 1915).
_US = "datetime64[us]"
_NAT = np.datetime64("NaT", "us")


#: Rows parsed per Arrow step: bounds the temporary copies a 10M-row column would need.
_PARSE_BLOCK_ROWS = 1_000_000


#: Byte positions of the separators of 'YYYY-MM-DDTHH:MM:SS', and the bytes expected there.
_ISO_SEPARATORS = ((4, ord("-")), (7, ord("-")), (10, ord("T")), (13, ord(":")), (16, ord(":")))
_ISO_SECONDS_BYTES = 19
#: Local times the fast parse takes as they are: inside the accepted range with a year of margin,
#: where strptime surely accepts what the strict cast accepts (years 0000 and the like go the
#: checked way and end where they always did).
_FAST_RANGE = (np.datetime64("1899-01-01", "us"), np.datetime64("2201-01-01", "us"))


def _iso_seconds_layout(text: pa.Array) -> np.ndarray:
    """Mask of the values of ``text`` (one Arrow (large) string array) that are 19 bytes with
    the separators of 'YYYY-MM-DDTHH:MM:SS' in place (read from Arrow's buffers; nulls False)."""
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    _, offsets_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(
        offsets_buffer, width, len(text) + 1, text.offset * np.dtype(width).itemsize
    )
    layout = (offsets[1:] - offsets[:-1]) == _ISO_SECONDS_BYTES
    if text.null_count:
        layout &= np.asarray(pc.is_valid(text))
    if data_buffer is None or not layout.any():
        return np.zeros(len(text), dtype=bool)
    data = np.frombuffer(data_buffer, np.uint8)
    if layout.all():  # every value 19 bytes, back to back: read them as rows of a 2-D view
        records = data[offsets[0] : offsets[0] + _ISO_SECONDS_BYTES * len(text)]
        records = records.reshape(len(text), _ISO_SECONDS_BYTES)
        for at, byte in _ISO_SEPARATORS:
            layout &= records[:, at] == byte
        return layout
    rows = np.flatnonzero(layout)
    at = offsets[:-1][rows].astype(np.int64, copy=False)  # a new array, moved in place
    fits = np.ones(len(rows), dtype=bool)
    moved = 0
    for separator, byte in _ISO_SEPARATORS:
        at += separator - moved
        moved = separator
        fits &= data[at] == byte
    layout[rows[~fits]] = False
    return layout


def _cast_iso_block(text: pa.Array) -> np.ndarray | None:
    """Arrow's strict ISO cast of the values of a block with the 'YYYY-MM-DDTHH:MM:SS' layout:
    datetime64[us], NaT for the others (and nulls); None when a value with the layout fails
    the cast or lies outside ``_FAST_RANGE`` (the block is then parsed the checked way).

    The cast parses several times faster than strptime and refuses impossible dates (Feb 30),
    hours past 23 and zone offsets; on this layout it accepts exactly what strptime and the
    strict cast together accepted, with the same values.
    """
    layout = _iso_seconds_layout(text)
    if not layout.any():
        return None
    if not layout.all():  # the other values become nulls: a new validity bitmap, no copy
        bits = np.zeros(text.offset + len(text), dtype=bool)
        bits[text.offset :] = layout
        text = pa.Array.from_buffers(
            text.type,
            len(text),
            [pa.py_buffer(np.packbits(bits, bitorder="little")), *text.buffers()[1:]],
            offset=text.offset,
        )
    try:
        parsed = pc.cast(text, pa.timestamp("us"))
    except pa.ArrowInvalid:
        return None
    stamps = parsed.to_numpy(zero_copy_only=False).astype(_US, copy=False)
    inside = np.isnat(stamps) | ((stamps >= _FAST_RANGE[0]) & (stamps < _FAST_RANGE[1]))
    return stamps if inside.all() else None


def _parse_iso_block(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Arrow's parse of a block of naive 'YYYY-MM-DDTHH:MM:SS' text: datetime64[us], NaT where
    the text has another layout; None if Arrow's strict ISO cast disagrees with strptime."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks() if text.num_chunks != 1 else text.chunk(0)
    fast = _cast_iso_block(text)
    if fast is not None:
        return fast
    parsed = pc.strptime(text, format=_ISO_SECONDS, unit="us", error_is_null=True)
    accepted = pc.is_valid(parsed)
    try:
        strict = pc.cast(pc.filter(text, accepted), pa.timestamp("us"))
    except pa.ArrowInvalid:
        return None
    if pc.all(pc.equal(strict, pc.filter(parsed, accepted))).as_py() not in (True, None):
        return None
    return parsed.to_numpy(zero_copy_only=False).astype(_US)


def _parse_iso_with_arrow(values: pd.Series) -> np.ndarray | None:
    """Naive 'YYYY-MM-DDTHH:MM:SS' text parsed by Arrow (NaT where it has another layout), or
    None when Arrow cannot judge the column (not text, or a disagreement with its strict cast).

    pandas' parser first turns Arrow text into a Python object per row; Arrow parses in place,
    several times faster, block by block. Arrow's strptime rolls impossible dates over (Feb 30
    -> Mar 2), so what it accepts is checked against Arrow's strict ISO cast.
    """
    try:
        text = pa.array(values, from_pandas=True)  # zero-copy for Arrow-backed text
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        return None
    stamps = np.empty(len(text), dtype=_US)
    done = 0
    # Block by block within each chunk: a block across chunks would copy their text.
    for chunk in text.chunks if isinstance(text, pa.ChunkedArray) else [text]:
        for start in range(0, len(chunk), _PARSE_BLOCK_ROWS):
            block = _parse_iso_block(chunk.slice(start, _PARSE_BLOCK_ROWS))
            if block is None:
                return None
            stamps[done : done + len(block)] = block
            done += len(block)
    return stamps


def _to_datetime(
    text: pd.Series, timestamp_format: str, utc: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``text`` parsed as (naive local times, UTC instants as naive UTC), microseconds, NaT where
    unparsable or of the other kind; a group pandas cannot parse at once goes value by value."""
    try:
        parsed = pd.to_datetime(text, format=timestamp_format, errors="coerce", utc=utc)
        if not pd.api.types.is_datetime64_any_dtype(parsed):
            raise ValueError("mixed")  # noqa: TRY301 - handled below, value by value
    except (ValueError, TypeError, OverflowError):
        return _to_datetime_one_by_one(text, timestamp_format)
    naive = np.full(len(text), _NAT)
    aware = np.full(len(text), _NAT)
    if parsed.dt.tz is None:
        naive = parsed.dt.as_unit("us").to_numpy(dtype=_US)
    else:
        aware = parsed.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("us").to_numpy(_US)
    return naive, aware


def _to_datetime_one_by_one(
    text: pd.Series, timestamp_format: str
) -> tuple[np.ndarray, np.ndarray]:
    """The slow path of ``_to_datetime`` (a column mixing layouts pandas refuses together)."""
    naive = np.full(len(text), _NAT)
    aware = np.full(len(text), _NAT)
    for position, value in enumerate(text.tolist()):
        try:
            moment = pd.to_datetime(value, format=timestamp_format, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            continue
        if moment is None or pd.isna(moment):
            continue
        if moment.tzinfo is None:
            naive[position] = moment.as_unit("us").to_datetime64()
        else:
            aware[position] = (
                moment.tz_convert("UTC").tz_localize(None).as_unit("us").to_datetime64()
            )
    return naive, aware


def _parse_text(values: pd.Series, timestamp_format: str) -> tuple[np.ndarray, np.ndarray]:
    """Timestamp text as (naive local times, UTC instants as naive UTC), in microseconds.

    Offset-aware values (``...Z``, ``+02:00``) are instants; the others are local times of the
    source. A column mixing both (which pandas refuses: "Mixed timezones detected") is split.
    """
    naive = np.full(len(values), _NAT)
    aware = np.full(len(values), _NAT)
    todo = values.notna().to_numpy(dtype=bool, copy=True)
    if timestamp_format == "ISO8601":
        arrow = _parse_iso_with_arrow(values)
        if arrow is not None:
            naive = arrow
            todo &= np.isnat(arrow)
    rows = np.flatnonzero(todo)
    if not len(rows):
        return naive, aware
    rest = values if len(rows) == len(values) else values.iloc[rows]
    rest = rest.astype("string").reset_index(drop=True)
    if timestamp_format == "ISO8601":
        instant = rest.str.contains(_AWARE_ISO, regex=True, na=False).to_numpy()
    else:
        instant = np.full(len(rest), "%z" in timestamp_format or "%Z" in timestamp_format)
    for group in (instant, ~instant):
        if group.any():
            found_naive, found_aware = _to_datetime(
                rest[group], timestamp_format, utc=bool(group is instant)
            )
            naive[rows[group]] = found_naive
            aware[rows[group]] = found_aware
    return naive, aware


_EARLIEST_US, _LATEST_US = (
    np.datetime64(moment.tz_convert("UTC").tz_localize(None), "us")
    for moment in (EARLIEST_TIME, LATEST_TIME)
)
#: Hours of local time localised at once (``_local_to_utc``); wider spans go row by row.
_MAX_HOUR_TABLE = 10_000_000
_HOUR_US = np.timedelta64(1, "h").astype("m8[us]")


def _outside_range(times: np.ndarray) -> np.ndarray:
    """``schemas.outside_time_range`` of naive-UTC datetime64[us] times, in numpy (NaT compares
    False: missing is not outside)."""
    return (times < _EARLIEST_US) | (times >= _LATEST_US)


def _localise_rows(naive: np.ndarray, timezone: str) -> np.ndarray:
    """Local times of ``timezone`` (datetime64[us], NaT allowed) as naive UTC, row by row in
    pandas; NaT where a time is ambiguous or does not exist."""
    localised = pd.DatetimeIndex(naive).tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    return localised.tz_convert("UTC").tz_localize(None).to_numpy(dtype=_US)


def _local_to_utc(naive: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Local times of ``timezone`` (datetime64[us]) as naive UTC, NaT where ambiguous or
    skipped, and the mask of those (a local time that is not NaT but has no single instant).

    The zone is asked once per local hour the times span, not once per row: an hour whose first
    and last microsecond have the same UTC offset holds no transition (zones change their
    offset at most once within an hour), so its rows move by that offset; the rows of the few
    hours with a transition, and spans too wide for the table, are localised one by one.
    """
    present = ~np.isnat(naive)
    if timezone == "UTC":
        return naive.copy(), np.zeros(len(naive), dtype=bool)
    if not present.any():  # still asked: an unknown zone fails whatever the rows
        return _localise_rows(naive, timezone), present
    # The first and last local hour (floor division, as numpy floors datetimes to hours).
    ticks, hour_us = naive.view(np.int64), int(_HOUR_US.astype(np.int64))
    first = int(np.min(ticks, where=present, initial=np.iinfo(np.int64).max)) // hour_us
    span = int(np.max(ticks, where=present, initial=np.iinfo(np.int64).min)) // hour_us - first + 1
    if span > _MAX_HOUR_TABLE:
        utc = _localise_rows(naive, timezone)
        return utc, present & np.isnat(utc)
    starts = (np.datetime64(first, "h") + np.arange(span)).astype(_US)
    offset_start = starts - _localise_rows(starts, timezone)
    offset_end = (starts + _HOUR_US - 1) - _localise_rows(starts + _HOUR_US - 1, timezone)
    steady = ~np.isnat(offset_start) & (offset_start == offset_end)
    if steady.all() and (offset_start == offset_start[0]).all():
        # One offset over the whole span (no change of the zone's in it): one subtraction.
        return naive - offset_start[0], np.zeros(len(naive), dtype=bool)
    # Each row's local hour as an index into the table, worked in place; NaT rows get 0, unused.
    index = ticks // hour_us
    index -= first
    index[~present] = 0
    utc = naive - offset_start[index]  # NaT stays NaT
    unsteady = present & ~steady[index]
    if unsteady.any():
        utc[unsteady] = _localise_rows(naive[unsteady], timezone)
    return utc, present & np.isnat(utc)


def _parse_timestamps(
    values: pd.Series, timestamp_format: str, source_timezone: str
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse to UTC: the parsed values (NaT where not usable), a mask of local times that do
    not exist once (ambiguous or skipped), and a mask of times out of the accepted range.

    Naive values are local times of ``source_timezone``; offset-aware ones are converted to
    UTC. Times outside ``EARLIEST_TIME``..``LATEST_TIME`` are NaT here and flagged: they are
    never converted to nanoseconds, where they would wrap into another century.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        empty = np.full(len(values), _NAT)
        if values.dt.tz is None:
            naive, aware = values.dt.as_unit("us").to_numpy(dtype=_US, copy=True), empty
        else:
            utc = values.dt.tz_convert("UTC").dt.tz_localize(None)
            naive, aware = empty, utc.dt.as_unit("us").to_numpy(dtype=_US)
    else:
        naive, aware = _parse_text(values, timestamp_format)
    # Local times are judged as if UTC first (a day of margin is irrelevant at these limits),
    # so localising never sees a time it cannot hold.
    any_aware = not np.isnat(aware).all()  # most sources: none (three passes saved)
    far = _outside_range(naive)
    if any_aware:
        far |= _outside_range(aware)
    naive[far] = _NAT  # the parse's own arrays: changed in place
    from_local, ambiguous = _local_to_utc(naive, source_timezone)
    if any_aware:
        combined = np.where(np.isnat(aware) | far, from_local, aware)
    else:  # from_local itself, unless it is a read-only view of pandas' (changed below)
        combined = from_local if from_local.flags.writeable else from_local.copy()
    far |= _outside_range(combined)  # the offset moved a time over the edge
    combined[far] = _NAT
    parsed = pd.Series(
        pd.array(combined.astype("datetime64[ns]")).tz_localize("UTC"),
        index=values.index,
        name=values.name,
    )
    ambiguous = pd.Series(ambiguous, index=values.index)
    return parsed, ambiguous, pd.Series(far, index=values.index)


def _rules(
    events: pd.DataFrame,
    parsed: dict[str, pd.Series],
    ambiguous: dict[str, pd.Series],
    mapped: list[str],
    params: dict[str, Any],
    *,
    far: dict[str, pd.Series],
    area: dict[str, Any],
) -> list[tuple[str, str, pd.Series]]:
    """Each cleaning rule as (reason, column, mask of failing rows), in priority order.

    The rules are defined once in ``geo_busyness.cleaning_rules``, shared with the Spark engine.
    """
    engine = PandasRuleEngine(events, parsed, ambiguous, far)
    return cleaning_rules(engine, mapped, params, area=area)


def area_histograms(events: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Located events (``cleaning_rules.located_events``) per latitude bin and per longitude
    bin (``AREA_BINS_PER_DEGREE``): what the service area is learned from."""
    located = located_events(PandasRuleEngine(events, {}, {}, {}))
    rows = located.to_numpy(dtype=bool, na_value=False)
    return tuple(  # type: ignore[return-value]
        pd.Series(
            np.floor(events[col].to_numpy(dtype=float)[rows] * AREA_BINS_PER_DEGREE).astype(
                np.int64
            )
        ).value_counts(sort=False)
        for col in (EVENT_LAT, EVENT_LON)
    )


def service_area(events: pd.DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    """The service area the cleaning rules check (``cleaning_rules.resolve_service_area``):
    the configured one, else the one the located events cover, learned from them."""
    area = resolve_service_area(params, lambda: area_histograms(events))
    logger.info("Service area: %s", {k: v for k, v in area.items() if k != "rule"})
    return area


def split_clean_and_rejected(
    events: pd.DataFrame, params: dict[str, Any], area: dict[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split canonical events into clean rows (UTC, typed) and rejected rows with one reason each.

    Rules apply in the order of ``REJECT_REASONS``; a row is rejected for the first it fails.
    A line the CSV parser could not read (``LINE_FAULT``) is rejected for that, in the
    ``source_line`` column. A repeated order number rejects every occurrence after the first
    valid one. ``area`` is the service area (``service_area``; None: resolved here).
    """
    if area is None:
        area = service_area(events, params)
    mapped = [col for col in CANONICAL_COLUMNS if params["column_mapping"].get(col)]
    parsed, ambiguous, far = {}, {}, {}
    for col in TIMESTAMP_COLUMNS:
        parsed[col], ambiguous[col], far[col] = _parse_timestamps(
            events[col], params["timestamp_format"], params["source_timezone"]
        )
    reason_code = np.zeros(
        len(events), dtype=np.int8
    )  # 0 = clean, else 1 + index in REJECT_REASONS
    column_code = np.zeros(len(events), dtype=np.int8)
    if LINE_FAULT in events.columns:
        faults = pd.Categorical(events[LINE_FAULT], categories=list(REJECT_REASONS)).codes
        reason_code[:] = faults + 1  # -1 (no fault) + 1 = clean
        column_code[faults >= 0] = REJECT_COLUMNS.index(SOURCE_LINE)
    for reason, col, mask in _rules(events, parsed, ambiguous, mapped, params, far=far, area=area):
        hit = (reason_code == 0) & mask.to_numpy(dtype=bool, na_value=False)
        reason_code[hit] = REJECT_REASONS.index(reason) + 1
        column_code[hit] = CANONICAL_COLUMNS.index(col)
    ambiguous = far = None  # judged: freed before the clean table is built
    if ORDER_NUMBER in mapped:
        valid = np.flatnonzero(reason_code == 0)
        repeated = valid[_repeated(events[ORDER_NUMBER].take(valid))]
        reason_code[repeated] = REJECT_REASONS.index(DUPLICATE_ORDER) + 1
        column_code[repeated] = CANONICAL_COLUMNS.index(ORDER_NUMBER)

    keep = reason_code == 0
    clean = _take_clean(events, parsed, np.flatnonzero(keep))
    clean[VENUE_ID] = venue_id(clean[VENUE_LAT], clean[VENUE_LON])
    rejected = take_rows(events, np.flatnonzero(~keep))
    rejected[REJECT_REASON] = pd.Categorical.from_codes(
        reason_code[~keep] - 1, categories=list(REJECT_REASONS)
    )
    rejected[REJECT_COLUMN] = pd.Categorical.from_codes(
        column_code[~keep], categories=list(REJECT_COLUMNS)
    )
    logger.info("Cleaning kept %s rows and rejected %s", f"{keep.sum():,}", f"{(~keep).sum():,}")
    return clean, rejected.reset_index(drop=True)


#: ``_repeated`` counts integer values in a table of at most this many bins per value.
_MAX_BINS_PER_VALUE = 4


def _repeated(values: pd.Series) -> np.ndarray:
    """``values.duplicated(keep="first")`` as a numpy mask.

    Integer values spanning a range not much wider than their number (order numbers, mostly)
    are counted in a table first: only the values seen more than once are hashed, in order,
    which gives the same mask several times faster than hashing all of them.
    """
    numbers = values.to_numpy()
    if numbers.dtype == np.int64 and len(numbers):
        low = int(numbers.min())
        span = int(numbers.max()) - low + 1
        if span <= _MAX_BINS_PER_VALUE * len(numbers):
            offsets = numbers - low
            seen_again = np.bincount(offsets, minlength=span)[offsets] > 1
            repeated = np.zeros(len(numbers), dtype=bool)
            repeated[seen_again] = (
                pd.Series(numbers[seen_again]).duplicated(keep="first").to_numpy()
            )
            return repeated
    return values.duplicated(keep="first").to_numpy()


def take_rows(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame.take(rows)`` with a fresh index; ``rows`` ascending positions.

    Arrow-backed columns are taken chunk by chunk: Arrow's take on a chunked column first
    joins every chunk into one (at 10M rows of timestamp text, ~0.3 s a column of fresh
    memory to take the few rejected rows).
    """
    columns = {}
    for name, values in frame.items():
        if isinstance(values.array, ArrowExtensionArray):
            columns[name] = pd.array(_take_chunks(pa.array(values.array), rows), values.dtype)
        else:
            columns[name] = values.array.take(rows)
    return pd.DataFrame(columns, columns=frame.columns, copy=False)


def _take_chunks(chunked: pa.ChunkedArray | pa.Array, rows: np.ndarray) -> pa.ChunkedArray:
    """The values at ascending positions ``rows`` of an Arrow column, taken chunk by chunk."""
    chunks = chunked.chunks if isinstance(chunked, pa.ChunkedArray) else [chunked]
    starts = np.cumsum([0, *(len(chunk) for chunk in chunks)])
    cuts = np.searchsorted(rows, starts)
    taken = [
        chunk.take(pa.array(rows[cuts[i] : cuts[i + 1]] - starts[i]))
        for i, chunk in enumerate(chunks)
        if cuts[i + 1] > cuts[i]
    ]
    return pa.chunked_array(taken, type=chunked.type)


def _take_clean(
    events: pd.DataFrame, parsed: dict[str, pd.Series], rows: np.ndarray
) -> pd.DataFrame:
    """The clean rows, with the parsed timestamps in place of the text (in the same column order).

    The raw timestamp text is never copied: taking millions of strings only to replace them
    was the largest cost after parsing. ``parsed`` is emptied: each parsed column is dropped
    once its clean rows are taken, before the other columns are (at 10M events the run's
    peak memory is here, and each parsed column is 80 MB).
    """
    taken = {}
    for col in TIMESTAMP_COLUMNS:
        taken[col] = parsed.pop(col).array.take(rows)
    dropped = [*TIMESTAMP_COLUMNS, *(col for col in LINE_COLUMNS if col in events.columns)]
    body = events.drop(columns=dropped).take(rows).reset_index(drop=True)
    for col in TIMESTAMP_COLUMNS:
        body.insert(events.columns.get_loc(col), col, taken.pop(col))
    return body


def enforce_rejected_share(
    clean: pd.DataFrame,
    rejected: pd.DataFrame,
    max_rejected_fraction: float,
    area: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Pass clean rows on with a quality report (with the service area checked, when given),
    or fail if too large a share was rejected."""
    by_reason = rejected.groupby([REJECT_REASON, REJECT_COLUMN], observed=True).size()
    report = quality_report(
        by_reason,
        len(clean),
        clean[EVENT_TIME].min() if len(clean) else None,
        clean[EVENT_TIME].max() if len(clean) else None,
        max_rejected_fraction,
        area=area,
    )
    return clean, report


def quality_report(
    rejected_by_reason_and_column: pd.Series,
    rows_clean: int,
    first_event: pd.Timestamp | None,
    last_event: pd.Timestamp | None,
    max_rejected_fraction: float,
    *,
    area: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The data quality report from rejected rows counted per (reason, column), with the
    service area the rules checked; raises ``DataQualityError`` above the allowed rejected
    share (both engines' gate)."""
    # Keyed by text, most rows first, ties by reason then column: the same order whatever the
    # engine (and the index's dtype) that counted them.
    by_reason = pd.Series(
        rejected_by_reason_and_column.to_numpy(dtype=np.int64),
        index=pd.MultiIndex.from_tuples(
            [(str(r), str(c)) for r, c in rejected_by_reason_and_column.index],
            names=[REJECT_REASON, REJECT_COLUMN],
        )
        if len(rejected_by_reason_and_column)
        else pd.MultiIndex.from_arrays([[], []], names=[REJECT_REASON, REJECT_COLUMN]),
        dtype=np.int64,
    )
    by_reason = by_reason[by_reason > 0].sort_index().sort_values(ascending=False, kind="stable")
    rows_rejected = int(by_reason.sum())
    total = rows_clean + rows_rejected
    if total == 0:
        raise DataQualityError("The raw events table has no rows.")
    top = [{"reason": r, "column": c, "rows": int(n)} for (r, c), n in by_reason.items()]
    per_reason = by_reason.groupby(level=0).sum().sort_values(ascending=False, kind="stable")
    share = rows_rejected / total
    report = {
        "rows_in": total,
        "rows_clean": rows_clean,
        "rows_rejected": rows_rejected,
        "rejected_fraction": round(share, 6),
        "max_rejected_fraction": max_rejected_fraction,
        "rejected_by_reason": {str(r): int(n) for r, n in per_reason.items() if n},
        "rejected_by_reason_and_column": top,
        "first_event_utc": str(first_event) if rows_clean else None,
        "last_event_utc": str(last_event) if rows_clean else None,
        "service_area": dict(area) if area is not None else None,
    }
    if share > max_rejected_fraction:
        reasons = "; ".join(f"{t['reason']} in {t['column']}: {t['rows']:,}" for t in top[:5])
        raise DataQualityError(
            f"Rejected {rows_rejected:,} of {total:,} rows ({share:.1%}), above "
            f"data_processing.max_rejected_fraction={max_rejected_fraction:.1%}. Top reasons: {reasons}. "
            "The rejected rows, with their reasons, are in the 'rejected_events' dataset."
        )
    return report
