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

The service area the rules check is the configured ``service_area``, else the one learned from
the events (``learn_service_area``, ``SERVICE_AREA_RULE``): each engine counts the located
events per latitude and per longitude bin, and the box is computed here from those counts, so
both engines check the same box to the last digit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
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
    LAT_LIMIT,
    LON_LIMIT,
    MISSING_VALUE,
    ORDER_CREATED,
    OUTSIDE_SERVICE_AREA,
    PING_BEFORE_ORDER_CREATION,
    SWAPPED_COORDINATES,
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


# ---------------------------------------------------------------- the service area
#: The bounds of a service area (degrees; a box, both ends inclusive).
AREA_BOUNDS = ("lat_min", "lat_max", "lon_min", "lon_max")
#: Bins per degree of the latitude and longitude histograms the area is learned from (0.01
#: degree: ~1.1 km of latitude); a bin is ``floor(value * AREA_BINS_PER_DEGREE)``.
AREA_BINS_PER_DEGREE = 100
#: Kilometres in a degree of latitude (and of longitude at the equator), with the Earth
#: radius of the project's distances (``model.geo.haversine_km``, ``model.queries``).
KM_PER_DEGREE = 6372.8 * math.pi / 180
#: ``data_processing.learned_service_area`` when a parameter file has none.
DEFAULT_AREA_LEARNING = {"quantile": 0.05, "margin_km": 20.0}
SERVICE_AREA_RULE = (
    "Where data_processing.service_area is null, the service area is learned from the events: "
    "of the rows whose courier_lat and courier_lon are present and within +-90 / +-180, the box "
    "from the `quantile` to the 1 - `quantile` quantile of the latitudes and of the longitudes "
    "(each read on 0.01-degree bins, rounded outward), grown by `margin_km` on every side (in "
    "longitude at the box's most poleward latitude). A cluster of up to `quantile` of the rows "
    "on one side (another city in the feed) cannot widen it."
)


def area_learning(params: dict[str, Any]) -> dict[str, float] | None:
    """``data_processing.learned_service_area`` checked (absent: the defaults; null: off)."""
    if "learned_service_area" not in params:
        return dict(DEFAULT_AREA_LEARNING)
    learning = params["learned_service_area"]
    if learning is None:
        return None
    quantile, margin = learning.get("quantile"), learning.get("margin_km")
    if (
        not isinstance(quantile, int | float)
        or isinstance(quantile, bool)
        or not 0 <= quantile < 0.5
    ):
        raise ValueError(
            "data_processing.learned_service_area.quantile must be a number in [0, 0.5), got "
            f"{quantile!r}."
        )
    if not isinstance(margin, int | float) or isinstance(margin, bool) or not margin >= 0:
        raise ValueError(
            "data_processing.learned_service_area.margin_km must be a number >= 0 (km), got "
            f"{margin!r}."
        )
    return {"quantile": float(quantile), "margin_km": float(margin)}


def located_events(engine: RuleEngine) -> Any:
    """Rows whose event point is present and within the coordinate limits: what the service
    area is learned from."""
    lat, lon = engine.value(EVENT_LAT), engine.value(EVENT_LON)
    return (
        ~engine.is_missing(lat)
        & ~engine.is_missing(lon)
        & (engine.absolute(lat) <= LAT_LIMIT)
        & (engine.absolute(lon) <= LON_LIMIT)
    )


def _quantile_bins(counts: pd.Series, quantile: float) -> tuple[int, int]:
    """The bins holding the ``quantile`` and ``1 - quantile`` quantiles of a histogram
    (bin -> rows): the first bin whose cumulative count reaches each share of the rows."""
    ordered = counts[counts > 0].sort_index()
    cumulative = ordered.to_numpy(dtype=np.int64).cumsum()
    total = cumulative[-1]
    low = np.searchsorted(cumulative, quantile * total, side="left")
    high = np.searchsorted(cumulative, (1 - quantile) * total, side="left")
    return int(ordered.index[low]), int(ordered.index[min(high, len(ordered) - 1)])


def learn_service_area(
    lat_bins: pd.Series, lon_bins: pd.Series, quantile: float, margin_km: float
) -> dict[str, float] | None:
    """The learned service area (``SERVICE_AREA_RULE``) from the located events' rows per
    latitude and per longitude bin (index: bin, values: rows); None without a located event."""
    if not int(lat_bins.sum()) or not int(lon_bins.sum()):
        return None
    lat_low, lat_high = _quantile_bins(lat_bins, quantile)
    lon_low, lon_high = _quantile_bins(lon_bins, quantile)
    margin_lat = margin_km / KM_PER_DEGREE
    lat_min = max(-LAT_LIMIT, lat_low / AREA_BINS_PER_DEGREE - margin_lat)
    lat_max = min(LAT_LIMIT, (lat_high + 1) / AREA_BINS_PER_DEGREE + margin_lat)
    # A degree of longitude is shortest at the box's most poleward latitude: the margin is
    # at least margin_km everywhere in the box. Near a pole every longitude is in.
    poleward = math.cos(math.radians(max(abs(lat_min), abs(lat_max))))
    margin_lon = margin_km / (KM_PER_DEGREE * poleward) if poleward > 1e-3 else 2 * LON_LIMIT
    lon_min = max(-LON_LIMIT, lon_low / AREA_BINS_PER_DEGREE - margin_lon)
    lon_max = min(LON_LIMIT, (lon_high + 1) / AREA_BINS_PER_DEGREE + margin_lon)
    # Rounded outward to 1e-6 degree (~0.1 m): a readable report, never a smaller box.
    return {
        "lat_min": math.floor(lat_min * 1e6) / 1e6,
        "lat_max": math.ceil(lat_max * 1e6) / 1e6,
        "lon_min": math.floor(lon_min * 1e6) / 1e6,
        "lon_max": math.ceil(lon_max * 1e6) / 1e6,
    }


def resolve_service_area(
    params: dict[str, Any], histograms: Callable[[], tuple[pd.Series, pd.Series]] | None
) -> dict[str, Any]:
    """The service area the rules check, as the quality report records it: ``source`` is
    ``configured`` (``service_area``), ``learned`` (from the engine's ``histograms`` of the
    located events per latitude and longitude bin, with the rule and its settings) or ``none``
    (learning off, or no located event), with the bounds when there are. ``histograms`` is
    called only when the area is learned."""
    configured = params.get("service_area")
    if configured:
        return {"source": "configured", **{key: float(configured[key]) for key in AREA_BOUNDS}}
    learning = area_learning(params)
    if learning is None:
        return {"source": "none", "why": "data_processing.learned_service_area is null"}
    lat_bins, lon_bins = histograms() if histograms is not None else (None, None)
    area = learn_service_area(lat_bins, lon_bins, **learning) if lat_bins is not None else None
    if area is None:
        return {"source": "none", "why": "no event with courier_lat/courier_lon in range"}
    return {
        "source": "learned",
        **area,
        **learning,
        "located_events": int(lat_bins.sum()),
        "rule": SERVICE_AREA_RULE,
    }


def _inside(lat: Any, lon: Any, area: dict[str, Any]) -> Any:
    """Mask of points in the area's box (bounds included)."""
    return lat.between(area["lat_min"], area["lat_max"]) & lon.between(
        area["lon_min"], area["lon_max"]
    )


def point_rules(engine: RuleEngine, area: dict[str, Any] | None) -> list[tuple[str, str, Any]]:
    """The event point's own rules: swapped coordinates (|lat| > 90 with |lon| <= 90, or a
    point outside the area whose swap lies inside), then outside the service area (``area``
    with its bounds; None or no bounds: no area check). ``cleaning_rules`` puts the first
    before the coordinate limits (such a latitude is a swap, not an out-of-range value) and
    the others after them."""
    lat, lon = engine.value(EVENT_LAT), engine.value(EVENT_LON)
    swapped = (engine.absolute(lat) > LAT_LIMIT) & (engine.absolute(lon) <= LAT_LIMIT)
    if area is None or "lat_min" not in area:
        return [(SWAPPED_COORDINATES, EVENT_LAT, swapped)]
    swapped = swapped | (~_inside(lat, lon, area) & _inside(lon, lat, area))
    return [
        (SWAPPED_COORDINATES, EVENT_LAT, swapped),
        (OUTSIDE_SERVICE_AREA, EVENT_LAT, ~lat.between(area["lat_min"], area["lat_max"])),
        (OUTSIDE_SERVICE_AREA, EVENT_LON, ~lon.between(area["lon_min"], area["lon_max"])),
    ]


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
    area: dict[str, Any] | None = None,
) -> list[tuple[str, str, Any]]:
    """Each row-wise cleaning rule as (reason, column, mask of failing rows), in priority order.

    ``mapped`` are the canonical columns the source provides; ``params`` is
    ``data_processing`` (``service_area``, ``as_of``, ``source_timezone``); ``area`` is the
    service area (``resolve_service_area``; None: the configured ``service_area``, if any).
    """
    if area is None and params.get("service_area"):
        area = resolve_service_area(params, None)
    swapped, *outside = point_rules(engine, area)
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
    rules.append(swapped)
    rules += [
        (
            COORDINATES_OUT_OF_RANGE,
            col,
            engine.absolute(engine.value(col)) > COORDINATE_LIMITS[col],
        )
        for col in COORDINATE_COLUMNS
        if col in mapped
    ]
    rules += outside
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
