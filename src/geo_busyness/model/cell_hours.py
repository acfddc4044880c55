"""UTC hours and events per (H3 cell, hour): the time arithmetic, counting, dense panels and
hour-of-week means that the feature transformer, the pipelines and the server share. Counting
is linear in the events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from geo_busyness.model.geo import h3_cells
from geo_busyness.schemas import CELL, EVENT_LAT, EVENT_LON, EVENT_TIME, HOUR, TARGET

HOURS_PER_WEEK = 168
HOUR_NS = pd.Timedelta(hours=1).value
DAY_NS = pd.Timedelta(days=1).value
#: Day of the week of 1970-01-01 (a Thursday), 0 = Monday.
_EPOCH_DAY_OF_WEEK = 3


class TimeParameterError(ValueError):
    """A time parameter that is not an ISO 8601 time, or a naive one that the source's time
    zone skips or repeats (the message names the key; ``errors.USER_ERRORS`` explains it)."""


def parse_time_parameter(value: Any, timezone: str, parameter: str) -> pd.Timestamp:
    """A time parameter as a UTC timestamp (ns): naive values are read in ``timezone`` (the
    source's, like the source's own naive timestamps), aware ones converted to UTC.

    Raises ``TimeParameterError`` naming ``parameter`` and the value when it is not an ISO 8601 time,
    or when a naive value does not exist or is ambiguous in ``timezone`` (a DST change).
    """
    moment = _parse_moment(value, parameter)
    if moment.tzinfo is not None:
        return moment.tz_convert("UTC").as_unit("ns")
    try:
        local = moment.tz_localize(timezone)
    except ZoneInfoNotFoundError:
        raise TimeParameterError(
            f"{parameter}={value!r} is naive and the source timezone {timezone!r} is unknown:"
            " set data_processing.source_timezone to an IANA name (e.g. America/Regina)."
        ) from None
    except ValueError as error:
        raise TimeParameterError(
            f"{parameter}={value!r} is ambiguous or does not exist in the source timezone"
            f" {timezone} ({error}); give it with a UTC offset, e.g. 2026-03-02T12:00:00-06:00."
        ) from None
    return local.tz_convert("UTC").as_unit("ns")


def _parse_moment(value: Any, parameter: str) -> pd.Timestamp:
    """``value`` (ISO 8601 text or a datetime) as a Timestamp, or a ValueError naming it."""
    moment = None
    if isinstance(value, dt.datetime):
        moment = pd.Timestamp(value)
    elif isinstance(value, str):
        try:
            moment = pd.Timestamp(value.strip())
        except ValueError:
            moment = None
    if moment is None or pd.isna(moment):
        raise TimeParameterError(
            f"{parameter} must be an ISO 8601 time (e.g. 2026-03-02T12:00:00Z, or naive in"
            f" data_processing.source_timezone), got {value!r}."
        )
    return moment


def to_utc_hours(values: pd.Series) -> pd.Series:
    """Floor timestamps (aware, naive = UTC, or ISO strings) to the start of their UTC hour."""
    parsed = pd.to_datetime(values, utc=True, format="ISO8601")
    if parsed.isna().any():
        raise ValueError(f"{parsed.isna().sum()} query timestamp(s) are missing or unparsable.")
    return parsed.dt.as_unit("ns").dt.floor("h")


def utc_hour_ns(values: pd.Series) -> np.ndarray:
    """``to_utc_hours`` as int64 nanoseconds since the epoch (parsed once, floored in numpy).

    Aware timestamps (what the server's request parser gives) are used as they are: their
    int64 values already count from the UTC epoch, so only other inputs go through parsing.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.array  # the Series' own array: no copy
    else:
        parsed = pd.array(pd.to_datetime(values, utc=True, format="ISO8601"))
    missing = parsed.isna()
    if missing.any():
        raise ValueError(f"{missing.sum()} query timestamp(s) are missing or unparsable.")
    ns = parsed.asi8 if parsed.unit == "ns" else parsed.as_unit("ns").asi8
    # One new array, floored in place (at 10M events every temporary is 80 MB of fresh pages).
    hours = np.remainder(ns, HOUR_NS)
    return np.subtract(ns, hours, out=hours)


def hours_array(hours_ns: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """UTC hour starts (int64 ns) as a pandas ``datetime64[ns, UTC]`` array."""
    return pd.array(np.asarray(hours_ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def hour_fields(hours_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour of the day (0-23) and day of the week (0 = Monday) of UTC times in int64 ns."""
    hour = (hours_ns // HOUR_NS) % 24
    day_of_week = (hours_ns // DAY_NS + _EPOCH_DAY_OF_WEEK) % 7
    return hour, day_of_week


def count_cell_hours(
    events: pd.DataFrame, resolution: int, *, cells: np.ndarray | None = None
) -> pd.DataFrame:
    """Events per (H3 cell, UTC hour): columns ``CELL`` (uint64), ``HOUR`` and ``TARGET``.

    Rows are sorted by cell, then hour. ``cells`` may pass the events' H3 cells at
    ``resolution`` when the caller has them already (H3 indexing is the costly part).
    """
    if cells is None:
        cells = h3_cells(events[EVENT_LAT], events[EVENT_LON], resolution)
    return counts_frame(
        *count_pairs(np.asarray(cells, dtype=np.uint64), utc_hour_ns(events[EVENT_TIME]))
    )


def counts_frame(cell: np.ndarray, hour: np.ndarray, count: np.ndarray) -> pd.DataFrame:
    """``count_pairs``' result as the ``count_cell_hours`` table."""
    return pd.DataFrame({CELL: cell, HOUR: hours_array(hour), TARGET: count})


#: Largest dense (cell x hour) grid ``count_pairs`` counts into directly, in bins.
_MAX_DENSE_BINS = 50_000_000


def count_pairs(
    cells: np.ndarray,
    hours_ns: np.ndarray,
    cell_codes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (cell, hour) pairs, sorted by cell then hour, and how often each occurs.

    Linear in the number of events: cells are hashed (``pd.factorize``), not sorted, and pairs
    are counted into a dense cell x hour grid with ``np.bincount`` (a sort of the pair keys
    only when that grid would be huge); only the distinct pairs are sorted. ``cell_codes``
    may pass ``pd.factorize(cells)`` (or codes into a superset of the distinct cells) when the
    caller has it; it is not changed.
    """
    if not len(cells):
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64)
    first = hours_ns.min()
    hour_index = np.subtract(hours_ns, first)
    hour_index //= HOUR_NS
    span = int(hour_index.max()) + 1
    # The keys are built in the codes' own array (or in one new array, the caller's codes
    # unchanged): at 10M events every new array is 80 MB of fresh pages, which cost more
    # than the arithmetic.
    if cell_codes is None:
        codes, distinct = pd.factorize(cells)  # cells numbered as they appear (sorted below)
        keys = codes.astype(np.int64, copy=False)
        keys *= span
    else:
        keys, distinct = np.multiply(cell_codes[0], span, dtype=np.int64), cell_codes[1]
    keys += hour_index
    if len(distinct) * span <= max(_MAX_DENSE_BINS, 4 * len(keys)):
        counts = np.bincount(keys, minlength=len(distinct) * span)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(keys, return_counts=True)
    # The few distinct pairs, ordered by cell (sorted) then hour.
    rank = np.empty(len(distinct), np.int64)
    rank[np.argsort(np.asarray(distinct), kind="stable")] = np.arange(len(distinct))
    code, hour = np.divmod(keys, span)
    order = np.argsort(rank[code] * span + hour, kind="stable")
    cell = np.asarray(distinct, dtype=np.uint64)[code[order]]
    return cell, first + hour[order] * HOUR_NS, counts[order].astype(np.int64)


def hour_of_week(hours: pd.Series) -> np.ndarray:
    """Hour of the week, 0 = Monday 00:00 UTC."""
    return (hours.dt.day_of_week * 24 + hours.dt.hour).to_numpy(dtype=np.int64)


def hour_of_week_mean(
    rows: np.ndarray, hours: pd.Series, values: np.ndarray, n_rows: int, window_hours: pd.Series
) -> np.ndarray:
    """Mean of ``values`` per (row, hour of week) over every hour of a window, zeros included.

    ``rows`` says which output row (e.g. a cell's index) each value belongs to; ``hours`` are
    the values' UTC hours. Hours of the window without a value count as zero. Returns an
    ``n_rows`` x 168 array, NaN for hours of the week the window does not contain.
    """
    hours_per_slot = np.bincount(hour_of_week(window_hours), minlength=HOURS_PER_WEEK)
    sums = np.zeros((n_rows, HOURS_PER_WEEK))
    np.add.at(sums, (rows, hour_of_week(hours)), np.asarray(values, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hours_per_slot > 0, sums / hours_per_slot, np.nan)


def build_panel(
    counts: pd.DataFrame, cells: np.ndarray, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Dense panel: every cell x every hour in [start, end), with zero where nothing happened."""
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    panel = pd.DataFrame(
        {
            CELL: np.repeat(np.asarray(cells, dtype=np.uint64), len(hours)),
            HOUR: hours[np.tile(np.arange(len(hours)), len(cells))],  # keeps the UTC dtype
        }
    )
    panel = panel.merge(counts[[CELL, HOUR, TARGET]], on=[CELL, HOUR], how="left")
    panel[TARGET] = panel[TARGET].fillna(0).astype(np.int64)
    return panel.sort_values([HOUR, CELL], ignore_index=True)


def distinct_pairs(cells: np.ndarray, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the distinct (cell, hour) pairs, and each pair's index among them."""
    _, cell_code = np.unique(cells, return_inverse=True)
    hour_values, hour_code = np.unique(hours, return_inverse=True)
    pair = cell_code.astype(np.int64) * len(hour_values) + hour_code
    _, first, inverse = np.unique(pair, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)
