"""The cleaning rules, defined once for every engine (pandas on one machine, Spark past it).

A rule says which rows of the canonical events fail it, with the reason and column a rejected
row is labelled with (``schemas.CLEANING_REJECT_REASONS``, in priority order: a row gets the
first rule it fails). ``cleaning_rules`` states every row-wise rule once, in terms of a few
primitives an engine provides (``RuleEngine``): a column's values, its parsed UTC timestamps,
whether a local time was ambiguous, "missing", absolute value, a UTC instant. The masks are
combined with the operators pandas Series and Spark Columns share (``&``, ``~``, ``>``,
``.between``). A mask may be null on Spark where pandas gives False; both engines count a null
as a pass, so the answers agree. The one cross-row rule, ``DUPLICATE_ORDER`` (every occurrence
of an order number after its first otherwise valid row, in source order), is applied by each
engine after these, as ``DUPLICATE_ORDER_RULE`` describes.
"""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from geo_busyness.schemas import (
    AMBIGUOUS_LOCAL_TIME,
    COORDINATE_COLUMNS,
    COORDINATE_LIMITS,
    COORDINATES_OUT_OF_RANGE,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    FUTURE_TIMESTAMP,
    MISSING_VALUE,
    ORDER_CREATED,
    OUTSIDE_SERVICE_AREA,
    PING_BEFORE_ORDER_CREATION,
    TIMESTAMP_COLUMNS,
    TIMESTAMP_OUT_OF_RANGE,
    UNPARSABLE_TIMESTAMP,
)

#: The cross-row rule, applied after the row-wise ones (by each engine).
DUPLICATE_ORDER_RULE = (
    "A mapped order number seen again after its first row that passed every other rule "
    "(in source order) rejects the later rows as duplicate_order, in the order_number column."
)


class RuleEngine(Protocol):
    """What an engine gives the rules: columns of the canonical events and a few primitives."""

    def value(self, column: str) -> Any:
        """The canonical column as mapped (coordinates as float, timestamps still raw)."""

    def parsed(self, column: str) -> Any:
        """A timestamp column parsed to UTC; null where unparsable or ambiguous."""

    def ambiguous(self, column: str) -> Any:
        """True where a naive local time is ambiguous or does not exist (DST changes)."""

    def out_of_range(self, column: str) -> Any:
        """True where a timestamp parsed but lies outside [EARLIEST_TIME, LATEST_TIME)."""

    def is_missing(self, values: Any) -> Any:
        """True where ``values`` is null (or NaN)."""

    def absolute(self, values: Any) -> Any:
        """``|values|``."""

    def instant(self, moment: pd.Timestamp) -> Any:
        """A UTC instant, comparable with ``parsed`` columns."""


def as_of_utc(params: dict[str, Any]) -> pd.Timestamp:
    """``data_processing.as_of`` in UTC (null: now). A naive as_of is read like naive event
    times: in the source timezone."""
    as_of = pd.Timestamp(params["as_of"]) if params.get("as_of") else pd.Timestamp.now(tz="UTC")
    if as_of.tz is None:
        as_of = as_of.tz_localize(params["source_timezone"])
    return as_of.tz_convert("UTC")


def cleaning_rules(
    engine: RuleEngine,
    mapped: list[str],
    params: dict[str, Any],
    as_of: pd.Timestamp | None = None,
) -> list[tuple[str, str, Any]]:
    """Each row-wise cleaning rule as (reason, column, mask of failing rows), in priority order.

    ``mapped`` are the canonical columns the source provides; ``params`` is
    ``data_processing`` (``service_area``, ``as_of``, ``source_timezone``).
    """
    rules = [(MISSING_VALUE, col, engine.is_missing(engine.value(col))) for col in mapped]
    timestamps = [col for col in TIMESTAMP_COLUMNS if col in mapped]
    # A local time that is ambiguous or skipped, or out of range, may parse to null too; each
    # has its own reason below.
    rules += [
        (
            UNPARSABLE_TIMESTAMP,
            col,
            engine.is_missing(engine.parsed(col))
            & ~engine.ambiguous(col)
            & ~engine.out_of_range(col),
        )
        for col in timestamps
    ]
    rules += [(TIMESTAMP_OUT_OF_RANGE, col, engine.out_of_range(col)) for col in timestamps]
    rules += [(AMBIGUOUS_LOCAL_TIME, col, engine.ambiguous(col)) for col in timestamps]
    rules += [
        (
            COORDINATES_OUT_OF_RANGE,
            col,
            engine.absolute(engine.value(col)) > COORDINATE_LIMITS[col],
        )
        for col in COORDINATE_COLUMNS
        if col in mapped
    ]
    area = params.get("service_area")
    if area:
        rules += [
            (OUTSIDE_SERVICE_AREA, col, ~engine.value(col).between(area[low], area[high]))
            for col, low, high in (
                (EVENT_LAT, "lat_min", "lat_max"),
                (EVENT_LON, "lon_min", "lon_max"),
            )
        ]
    limit = engine.instant(as_of if as_of is not None else as_of_utc(params))
    rules += [(FUTURE_TIMESTAMP, col, engine.parsed(col) > limit) for col in timestamps]
    if ORDER_CREATED in mapped:
        rules.append(
            (
                PING_BEFORE_ORDER_CREATION,
                EVENT_TIME,
                engine.parsed(ORDER_CREATED) > engine.parsed(EVENT_TIME),
            )
        )
    return rules


class PandasRuleEngine:
    """The rules' primitives on a pandas frame of canonical events and its parsed timestamps."""

    def __init__(
        self,
        events: pd.DataFrame,
        parsed: dict[str, pd.Series],
        ambiguous: dict[str, pd.Series],
        far: dict[str, pd.Series],
    ) -> None:
        self._events, self._parsed, self._ambiguous = events, parsed, ambiguous
        self._far = far

    def value(self, column: str) -> pd.Series:
        return self._events[column]

    def parsed(self, column: str) -> pd.Series:
        return self._parsed[column]

    def ambiguous(self, column: str) -> pd.Series:
        return self._ambiguous[column]

    def out_of_range(self, column: str) -> pd.Series:
        return self._far[column]

    def is_missing(self, values: pd.Series) -> pd.Series:
        return values.isna()

    def absolute(self, values: pd.Series) -> pd.Series:
        return values.abs()

    def instant(self, moment: pd.Timestamp) -> pd.Timestamp:
        return moment
