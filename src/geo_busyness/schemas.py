"""The project's vocabulary: column names, reject reasons, coordinate limits, pandera models.

Every source table is mapped onto the reference (courier) schema, so the names below are the
project's vocabulary: a ride pickup's ``Date/Time`` becomes ``courier_location_timestamp``.
Pipelines, the model package and the server all name columns and rules from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.engines import pandas_engine
from pandera.typing import Series

# ---------------------------------------------------------------- event columns
EVENT_TIME = "courier_location_timestamp"
EVENT_LAT = "courier_lat"
EVENT_LON = "courier_lon"
ORDER_CREATED = "order_created_timestamp"
VENUE_LAT = "restaurant_lat"
VENUE_LON = "restaurant_lon"
COURIER_ID = "courier_id"
ORDER_NUMBER = "order_number"
SOURCE_ROW = "source_row"
VENUE_ID = "restaurant_id"
REJECT_REASON = "reject_reason"
REJECT_COLUMN = "reject_column"
#: The server's answer to a refused query row sent alone as a request.
REJECT_MESSAGE = "reject_message"

#: Columns a query row must have: a time and a place (extra columns are ignored).
QUERY_COLUMNS = (EVENT_TIME, EVENT_LAT, EVENT_LON)
#: Optional query columns that are kept (as numbers).
OPTIONAL_QUERY_COLUMNS = (VENUE_LAT, VENUE_LON)
#: Columns a source must provide: an event, like a query, needs a time and a place.
REQUIRED_COLUMNS = QUERY_COLUMNS
#: Columns a source may provide; absent ones are filled with nulls.
OPTIONAL_COLUMNS = (COURIER_ID, ORDER_NUMBER, ORDER_CREATED, VENUE_LAT, VENUE_LON)
CANONICAL_COLUMNS = (
    COURIER_ID,
    ORDER_NUMBER,
    EVENT_TIME,
    EVENT_LAT,
    EVENT_LON,
    ORDER_CREATED,
    VENUE_LAT,
    VENUE_LON,
)
COORDINATE_COLUMNS = (EVENT_LAT, EVENT_LON, VENUE_LAT, VENUE_LON)
TIMESTAMP_COLUMNS = (EVENT_TIME, ORDER_CREATED)

# ---------------------------------------------------------------- cell-hour columns
#: The H3 cell as a uint64 id (counts, panels); ``H3_CELL`` is its hexadecimal name.
CELL = "cell"
#: Key columns of counts, panels and predictions: the cell's hexadecimal name and the UTC hour.
H3_CELL = "h3_cell"
HOUR = "hour"
#: Target: events in the cell during the hour.
TARGET = "busyness"
#: The model's answer (beside ``H3_CELL`` and ``HOUR``).
PREDICTION = "predicted_busyness"
#: The forecast's P10 / P50 / P90 (a negative binomial around the mean, fitted on validation).
INTERVAL_COLUMNS = ("p10", "p50", "p90")
#: Hours from the forecast's origin (the first hour the model did not know) to the hour asked.
HORIZON = "horizon_hours"
#: The seasonal-naive baseline's answer.
BASELINE = "baseline_busyness"

# ---------------------------------------------------------------- explanation columns
#: Columns of an explained answer (``geo_busyness.model.explain``): the forecaster's method,
#: the scale of its contributions (empty for a statistical baseline), the learned model's
#: weight in the row's blend, the explainer's base value and the learned model's output
#: (base value + every feature's contribution), then ``contribution_columns(1..k)``.
EXPLAIN_METHOD = "shap_method"
EXPLAIN_SCALE = "shap_scale"
LEARNED_WEIGHT = "shap_learned_weight"
EXPLAIN_BASE = "shap_base_value"
EXPLAIN_OUTPUT = "shap_output"
EXPLAIN_COLUMNS = (EXPLAIN_METHOD, EXPLAIN_SCALE, LEARNED_WEIGHT, EXPLAIN_BASE, EXPLAIN_OUTPUT)
#: Contributions an explanation lists per row unless asked otherwise.
EXPLAIN_TOP_K = 3
#: The request option asking for explanations, and the most contributions one answer lists.
EXPLAIN_FIELD = "explain"
MAX_EXPLAIN = 10


def contribution_columns(rank: int) -> tuple[str, str, str]:
    """The feature, its value and its contribution of a row's ``rank``-th largest (1-based)."""
    return f"shap_feature_{rank}", f"shap_feature_value_{rank}", f"shap_contribution_{rank}"


# ---------------------------------------------------------------- coordinate limits
LAT_LIMIT = 90.0
LON_LIMIT = 180.0
#: |value| <= limit, in degrees, for every coordinate column.
COORDINATE_LIMITS = {
    EVENT_LAT: LAT_LIMIT,
    VENUE_LAT: LAT_LIMIT,
    EVENT_LON: LON_LIMIT,
    VENUE_LON: LON_LIMIT,
}

# ---------------------------------------------------------------- time limits
#: Event and query times the project accepts: [EARLIEST_TIME, LATEST_TIME), UTC. pandas'
#: nanosecond timestamps end in 2262 and wrap silently beyond (9999-12-31 -> 1816-03-30); the
#: margin keeps every window and horizon computed from an accepted time representable.
EARLIEST_TIME = pd.Timestamp("1900-01-01T00:00:00Z")
LATEST_TIME = pd.Timestamp("2200-01-01T00:00:00Z")


def outside_time_range(times: Any) -> np.ndarray:
    """Mask of parsed times (any unit, tz-aware UTC or naive UTC) outside the accepted range;
    NaT is not outside (it is missing or unparsable, judged by its own rule)."""
    index = pd.DatetimeIndex(times)
    if index.tz is None:
        index = index.tz_localize("UTC")
    # pandas compares across units exactly (no conversion to nanoseconds, nothing wraps).
    outside = np.asarray((index < EARLIEST_TIME) | (index >= LATEST_TIME), dtype=bool)
    return outside & ~np.asarray(index.isna())


# ---------------------------------------------------------------- raw lines
#: A raw CSV line the parser could not read as one row (``datasets.CSVDataset``) is still a row:
#: every value null, the fault in ``LINE_FAULT`` and the line's text (its start, for a long
#: one) in ``LINE_TEXT``. The columns exist only when the file has such a line.
LINE_FAULT = "source_line_fault"
LINE_TEXT = "source_line_text"
#: The ``reject_column`` of a line that was not read: the whole line.
SOURCE_LINE = "source_line"
#: An empty (or whitespace-only) line: counted, never skipped silently.
BLANK_LINE = "blank_line"
#: A quote that does not open or close a field on its own line: read as CSV, it would swallow
#: the lines after it into one value until the next stray quote.
UNBALANCED_QUOTE = "unbalanced_quote"
#: A line longer than the dataset's ``max_line_bytes``.
LINE_TOO_LONG = "line_too_long"
#: A carriage return inside a line: the parser would split the line in two there.
STRAY_LINE_BREAK = "stray_line_break"
#: What the parser found, in the order it is checked (a line gets the first).
LINE_FAULTS = (LINE_TOO_LONG, BLANK_LINE, STRAY_LINE_BREAK, UNBALANCED_QUOTE)

# ---------------------------------------------------------------- reject reasons
MISSING_VALUE = "missing_value"
WRONG_TYPE = "wrong_type"
UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
#: A time that parses but lies outside ``EARLIEST_TIME``..``LATEST_TIME`` (year 9999, year 1,
#: Unix milliseconds sent as seconds): refused, never wrapped into another century.
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
AMBIGUOUS_LOCAL_TIME = "ambiguous_local_time"
#: An event point that makes sense only with latitude and longitude swapped: |lat| > 90 with
#: |lon| <= 90, or a point outside the service area whose swap lies inside it. Processing and
#: every query path (``model.queries``) name it the same.
SWAPPED_COORDINATES = "swapped_coordinates"
COORDINATES_OUT_OF_RANGE = "coordinates_out_of_range"
#: An event point outside the service area: the configured ``data_processing.service_area``,
#: else the area the events cover (``cleaning_rules.learn_service_area``); for a query, farther
#: than the allowed distance from every cell the model knows (its cells come from clean
#: events only). Refused rather than scored with a number the model has no basis for.
OUTSIDE_SERVICE_AREA = "outside_service_area"
FUTURE_TIMESTAMP = "future_timestamp"
PING_BEFORE_ORDER_CREATION = "ping_before_order_creation"
DUPLICATE_ORDER = "duplicate_order"
#: The cleaning node's reasons, in the order its rules apply (a row gets the first it fails).
CLEANING_REJECT_REASONS = (
    *LINE_FAULTS,
    MISSING_VALUE,
    UNPARSABLE_TIMESTAMP,
    TIMESTAMP_OUT_OF_RANGE,
    AMBIGUOUS_LOCAL_TIME,
    SWAPPED_COORDINATES,
    COORDINATES_OUT_OF_RANGE,
    OUTSIDE_SERVICE_AREA,
    FUTURE_TIMESTAMP,
    PING_BEFORE_ORDER_CREATION,
    DUPLICATE_ORDER,
)

_UTC = pd.DatetimeTZDtype(unit="ns", tz="UTC")


class _ValidatedInPlace(pa.DataFrameModel):
    """Validates without copying the frame first (pandera copies by default), and answers a
    frame that passes from numpy reductions of its columns (``passes_in_numpy``).

    Nothing is coerced, so validating in place changes nothing; at 10M events the copy took
    ~3 s and a second copy of the table in memory. pandera's own pass costs ~0.7 s per 10M
    rows in per-check overhead for what numpy reduces in milliseconds; a frame the numpy
    pass cannot vouch for goes through pandera, so every failure is pandera's own error.
    """

    #: numpy forms of the model's dataframe-level checks, by check name (``passes_in_numpy``
    #: defers to pandera for a check not named here).
    _numpy_frame_checks: ClassVar[dict[str, Callable[[pd.DataFrame], bool]]] = {}

    @classmethod
    def validate(  # noqa: PLR0913, PLR0917 - pandera's own signature
        cls,
        check_obj: pd.DataFrame,
        head: int | None = None,
        tail: int | None = None,
        sample: int | None = None,
        random_state: int | None = None,
        lazy: bool = False,
        inplace: bool = True,
    ) -> pd.DataFrame:
        whole = head is None and tail is None and sample is None
        if whole and cls.passes_in_numpy(check_obj):
            return check_obj
        return super().validate(check_obj, head, tail, sample, random_state, lazy, inplace)

    @classmethod
    def passes_in_numpy(cls, frame: Any) -> bool:
        """True only if pandera would pass ``frame`` (its columns, dtypes, nulls, uniqueness
        and checks, read with numpy); False when it fails or when this cannot tell."""
        schema = cls.to_schema()
        if not isinstance(frame, pd.DataFrame) or not frame.columns.is_unique:
            return False
        present = set(frame.columns)
        required = {name for name, column in schema.columns.items() if column.required}
        if not required <= present or (schema.strict and not present <= set(schema.columns)):
            return False
        # Options that change what pandera checks or returns: pandera alone handles them.
        if (
            schema.index is not None
            or schema.unique
            or schema.dtype is not None
            or schema.add_missing_columns
            or schema.drop_invalid_rows
            or getattr(schema, "parsers", None)
            or any(
                column.regex or column.coerce or getattr(column, "parsers", None)
                for column in schema.columns.values()
            )
        ):
            return False
        if not all(check.name in cls._numpy_frame_checks for check in schema.checks):
            return False
        columns_pass = all(
            _column_passes(column, frame[name])
            for name, column in schema.columns.items()
            if name in present
        )
        return columns_pass and all(
            cls._numpy_frame_checks[check.name](frame) for check in schema.checks
        )


#: Column checks ``_column_passes`` reads with numpy: name -> passes(values, statistics).
_NUMPY_COLUMN_CHECKS: dict[str, Callable[[Any, dict[str, Any]], bool]] = {
    "greater_than_or_equal_to": lambda values, stats: _least(values) >= stats["min_value"],
    "less_than_or_equal_to": lambda values, stats: _greatest(values) <= stats["max_value"],
}


def _least(values: np.ndarray) -> float:
    """Smallest value, NaN ignored (pandera's checks skip nulls); +inf without values (NaN
    when all are NaN: every comparison fails and pandera decides)."""
    return np.fmin.reduce(values) if len(values) else np.inf


def _greatest(values: np.ndarray) -> float:
    """Largest value, NaN ignored; -inf without values (NaN when all are NaN)."""
    return np.fmax.reduce(values) if len(values) else -np.inf


def _column_passes(column: Any, series: pd.Series) -> bool:
    """True only if pandera's checks of ``column`` (a schema column) pass on ``series``."""
    if column.dtype is not None:
        same_type = column.dtype.check(pandas_engine.Engine.dtype(series.dtype))
        if same_type is not True:
            return False
    if not column.nullable and series.hasnans:
        return False
    values = None
    if column.unique or column.checks:
        # Only plain numpy numbers are read here; any other column goes through pandera.
        if not (series.dtype.kind in "if" and isinstance(series.dtype, np.dtype)):
            return False
        values = series.to_numpy()
    if column.unique and not bool(np.all(values[1:] > values[:-1])):
        return False  # increasing is unique; anything else is left to pandera
    return all(
        check.name in _NUMPY_COLUMN_CHECKS
        and check.ignore_na
        and bool(_NUMPY_COLUMN_CHECKS[check.name](values, check.statistics))
        for check in column.checks
    )


def _ping_not_before_order(frame: pd.DataFrame) -> bool:
    """``CleanEvents.ping_not_before_order`` on every row, in int64 nanoseconds (NaT on either
    side passes, as pandas' comparison of NaT is False)."""
    created, ping = (frame[col].array.asi8 for col in (ORDER_CREATED, EVENT_TIME))
    nat = np.iinfo(np.int64).min
    return not bool(((created > ping) & (created != nat) & (ping != nat)).any())


class CanonicalEvents(_ValidatedInPlace):
    """Any event source after column mapping, before cleaning.

    Values are still raw: timestamps may be unparsable text and coordinates may be out of
    range. Only the structure is checked here; the cleaning node judges the values row by row
    so that bad rows are quarantined instead of failing the run.
    """

    source_row: Series[int] = pa.Field(unique=True, ge=0)
    courier_id: Series[Any] = pa.Field(nullable=True)
    order_number: Series[Any] = pa.Field(nullable=True)
    courier_location_timestamp: Series[Any] = pa.Field(nullable=True)
    courier_lat: Series[float] = pa.Field(nullable=True)
    courier_lon: Series[float] = pa.Field(nullable=True)
    order_created_timestamp: Series[Any] = pa.Field(nullable=True)
    restaurant_lat: Series[float] = pa.Field(nullable=True)
    restaurant_lon: Series[float] = pa.Field(nullable=True)
    source_line_fault: Series[Any] | None = pa.Field(nullable=True, isin=list(LINE_FAULTS))
    source_line_text: Series[Any] | None = pa.Field(nullable=True)

    class Config:
        strict = True


class CleanEvents(_ValidatedInPlace):
    """Events that passed every cleaning rule: UTC timestamps, valid coordinates, unique orders."""

    source_row: Series[int] = pa.Field(unique=True, ge=0)
    courier_id: Series[Any] = pa.Field(nullable=True)
    order_number: Series[Any] = pa.Field(nullable=True)
    courier_location_timestamp: Series[_UTC] = pa.Field(nullable=False)
    courier_lat: Series[float] = pa.Field(ge=-LAT_LIMIT, le=LAT_LIMIT)
    courier_lon: Series[float] = pa.Field(ge=-LON_LIMIT, le=LON_LIMIT)
    order_created_timestamp: Series[_UTC] = pa.Field(nullable=True)
    restaurant_lat: Series[float] = pa.Field(nullable=True, ge=-LAT_LIMIT, le=LAT_LIMIT)
    restaurant_lon: Series[float] = pa.Field(nullable=True, ge=-LON_LIMIT, le=LON_LIMIT)
    restaurant_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)

    class Config:
        strict = True

    _numpy_frame_checks = {"ping_not_before_order": _ping_not_before_order}

    @pa.dataframe_check(error="order_created_timestamp is after courier_location_timestamp")
    @classmethod
    def ping_not_before_order(cls, df: pd.DataFrame) -> Series[bool]:
        """A courier cannot collect an order before it was created."""
        return ~(df[ORDER_CREATED] > df[EVENT_TIME])  # NaT compares False
