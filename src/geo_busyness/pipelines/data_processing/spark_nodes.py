"""data_processing on Spark (`kedro run --env spark`): the same mapping, rules, reasons and
report as ``nodes``, as DataFrame code.

The rules are ``geo_busyness.cleaning_rules`` (shared with pandas) on Spark columns; timestamps
are parsed by Spark's own functions (``geo_busyness.spark.timestamps``). The labelled table (every
row with its parsed timestamps and the first row-wise rule it fails, if any) is the costly part,
computed and written once. The cross-row rule, duplicate orders, is applied where the quarantine,
the report and the clean events read it: a narrow aggregate over the written table, joined back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from geo_busyness.cleaning_rules import (
    AREA_BINS_PER_DEGREE,
    cleaning_rules,
    located_events,
    resolve_service_area,
)
from geo_busyness.model.geo import _ID_SCALE, _LON_SPAN
from geo_busyness.schemas import (
    CANONICAL_COLUMNS,
    COORDINATE_COLUMNS,
    COORDINATE_LIMITS,
    DUPLICATE_ORDER,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    LAT_LIMIT,
    LON_LIMIT,
    ORDER_CREATED,
    ORDER_NUMBER,
    REJECT_COLUMN,
    REJECT_REASON,
    SOURCE_ROW,
    TIMESTAMP_COLUMNS,
    VENUE_ID,
    VENUE_LAT,
    VENUE_LON,
)
from geo_busyness.spark.rows import with_row_numbers
from geo_busyness.spark.rules import SparkRuleEngine
from geo_busyness.spark.timestamps import with_utc_timestamps

from .nodes import DataQualityError, quality_report, resolve_column_mapping

logger = logging.getLogger(__name__)

#: Columns of the labelled table beside the canonical ones.
_UTC = "_utc_{}"
_AMBIGUOUS = "_ambiguous_{}"


def with_source_row(raw: DataFrame) -> DataFrame:
    """``raw`` with its row number in read order first (``SOURCE_ROW``, 0-based, consecutive):
    a single file is split in order, so a file's rows get their line number, as in pandas."""
    return with_row_numbers(raw, SOURCE_ROW)


def map_to_canonical(raw: DataFrame, column_mapping: dict[str, str | None]) -> DataFrame:
    """Spark ``nodes.map_to_canonical``: canonical names, numbered rows, coordinates as double
    (text that is not a number, and NaN, become null), absent optional columns as nulls."""
    mapping = resolve_column_mapping(column_mapping, list(raw.columns))
    numbered = with_source_row(raw)
    columns: list[Column] = [F.col(SOURCE_ROW)]
    for col in CANONICAL_COLUMNS:
        if col in COORDINATE_COLUMNS:
            value = (
                F.col(f"`{mapping[col]}`").try_cast(T.DoubleType())
                if col in mapping
                else F.lit(None).cast(T.DoubleType())
            )
            value = F.when(F.isnan(value), F.lit(None)).otherwise(value)
        elif col in mapping:
            value = F.col(f"`{mapping[col]}`")
        else:
            value = F.lit(None).cast(T.StringType())
        columns.append(value.alias(col))
    canonical = numbered.select(*columns)
    _check_canonical(canonical)
    return canonical


def _check_canonical(canonical: DataFrame) -> None:
    """The structure ``schemas.CanonicalEvents`` checks on pandas: exactly these columns,
    coordinates as double (values are judged row by row by the cleaning rules)."""
    types = {field.name: field.dataType for field in canonical.schema.fields}
    expected = [SOURCE_ROW, *CANONICAL_COLUMNS]
    wrong = [c for c in COORDINATE_COLUMNS if not isinstance(types.get(c), T.DoubleType)]
    if list(types) != expected or wrong:
        raise DataQualityError(
            f"canonical events on Spark have columns {list(types)} (expected {expected}); "
            f"coordinate columns not double: {wrong}"
        )


def area_histograms(canonical: DataFrame) -> tuple[pd.Series, pd.Series]:
    """Spark ``nodes.area_histograms``: located events per latitude and per longitude bin, in
    one aggregation (at most 18,000 + 36,000 bins reach the driver, whatever the rows)."""
    located = located_events(SparkRuleEngine({}, {}))
    bins = [
        F.struct(
            F.lit(axis).alias("axis"),
            F.floor(F.col(col) * AREA_BINS_PER_DEGREE).cast("long").alias("bin"),
        )
        for axis, col in enumerate((EVENT_LAT, EVENT_LON))
    ]
    counts = (
        canonical.where(located)
        .select(F.explode(F.array(*bins)).alias("_bin"))
        .groupBy(F.col("_bin.axis").alias("axis"), F.col("_bin.bin").alias("bin"))
        .count()
        .toPandas()
    )
    return tuple(  # type: ignore[return-value]
        counts.loc[counts["axis"] == axis].set_index("bin")["count"].astype("int64")
        for axis in (0, 1)
    )


def service_area(canonical: DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    """Spark ``nodes.service_area``: the same area from the same rule and bin counts."""
    area = resolve_service_area(params, lambda: area_histograms(canonical))
    logger.info("Service area: %s", {k: v for k, v in area.items() if k != "rule"})
    return area


def split_clean_and_rejected(
    canonical: DataFrame, params: dict[str, Any], area: dict[str, Any] | None = None
) -> DataFrame:
    """Every canonical row with its parsed UTC timestamps and the reason and column of the
    first row-wise rule it fails (null when none): Spark ``nodes.split_clean_and_rejected``
    before the split. Rules apply in priority order (``cleaning_rules``); duplicate orders are
    found on the written table (``find_duplicate_orders``) and applied where it is read.
    ``area`` is the service area (``service_area``; None: resolved here).
    """
    if area is None:
        area = service_area(canonical, params)
    mapped = [col for col in CANONICAL_COLUMNS if params["column_mapping"].get(col)]
    frame = with_utc_timestamps(
        canonical,
        {col: (_UTC.format(col), _AMBIGUOUS.format(col)) for col in TIMESTAMP_COLUMNS},
        params["timestamp_format"],
        params["source_timezone"],
    )
    engine = SparkRuleEngine(
        {col: _UTC.format(col) for col in TIMESTAMP_COLUMNS},
        {col: _AMBIGUOUS.format(col) for col in TIMESTAMP_COLUMNS},
    )
    # The first rule a row fails wins: one CASE WHEN chain (the required columns' missing_value
    # rules are always there, so the chain is never empty).
    (first_reason, first_column, first_mask), *rest = cleaning_rules(
        engine, mapped, params, area=area
    )
    reason = F.when(first_mask, F.lit(first_reason))
    column = F.when(first_mask, F.lit(first_column))
    for rule_reason, rule_column, mask in rest:
        reason = reason.when(mask, F.lit(rule_reason))
        column = column.when(mask, F.lit(rule_column))
    labelled = frame.select("*", reason.alias(REJECT_REASON), column.alias(REJECT_COLUMN))
    # The ambiguity flags have served the rules; the raw text stays for every row (a row
    # found to repeat an order later is quarantined with its raw values).
    return labelled.drop(*(_AMBIGUOUS.format(col) for col in TIMESTAMP_COLUMNS))


#: Spark 4's switch for one Complete-mode aggregation after the shuffle, no partial one before.
BYPASS_PARTIAL_AGGREGATION = "spark.sql.execution.bypassPartialAggregation"


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """``key`` set to ``value`` in the session while the block runs (planning reads it)."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


#: Repeated orders up to this many are broadcast to every task (a hash join without a shuffle
#: of the events); more, and Spark's sort-merge join takes them.
BROADCAST_MAX_ORDERS = 2_000_000


def find_duplicate_orders(labelled: DataFrame) -> DataFrame:
    """The order numbers seen on more than one otherwise valid row, with the first such row
    (smallest ``SOURCE_ROW``): a narrow aggregate over the labelled table, computed once and
    cached (the quarantine, the report and the clean events all apply it).

    Valid rows are counted with conditional aggregates: a filter on the reason instead would
    be pushed below the rule chain by the optimizer, which then inlines it (ten times slower).
    Rows without an order number (a source that maps none) never match. Nearly every order
    number is distinct, so the usual partial aggregation before the shuffle reduces nothing:
    it is bypassed for this aggregate (measured at 10M events: 3.5 s instead of 5-8 s).
    """
    valid = F.col(REJECT_REASON).isNull()
    # Planned (at persist) and cached (at count) with the setting.
    with session_conf(labelled.sparkSession, BYPASS_PARTIAL_AGGREGATION, "true"):
        repeated = (
            labelled.groupBy(ORDER_NUMBER)
            .agg(
                F.min(F.when(valid, F.col(SOURCE_ROW))).alias("_first_row"),
                F.count(F.when(valid, F.lit(1))).alias("_rows"),
            )
            .where((F.col("_rows") > 1) & F.col(ORDER_NUMBER).isNotNull())
            .select(ORDER_NUMBER, "_first_row")
            .persist()
        )
        rows = repeated.count()
    logger.info("%s order numbers repeat on valid rows", f"{rows:,}")
    return repeated


def with_duplicate_orders(labelled: DataFrame, repeated: DataFrame) -> DataFrame:
    """The labelled rows with later occurrences of a repeated order number rejected as
    ``duplicate_order`` (the first, by ``SOURCE_ROW``, stays)."""
    small = repeated.count() <= BROADCAST_MAX_ORDERS
    joined = labelled.join(F.broadcast(repeated) if small else repeated, ORDER_NUMBER, "left")
    duplicate = (
        F.col(REJECT_REASON).isNull()
        & F.col("_first_row").isNotNull()
        & (F.col(SOURCE_ROW) != F.col("_first_row"))
    )
    return joined.select(
        *(
            F.when(duplicate, F.lit(DUPLICATE_ORDER)).otherwise(F.col(name)).alias(name)
            if name == REJECT_REASON
            else F.when(duplicate, F.lit(ORDER_NUMBER)).otherwise(F.col(name)).alias(name)
            if name == REJECT_COLUMN
            else F.col(name)
            for name in labelled.columns
        )
    )


def quarantine_rejected(labelled: DataFrame, repeated_orders: DataFrame) -> DataFrame:
    """The rejected rows with their raw values, reason and column (the quarantine)."""
    return (
        with_duplicate_orders(labelled, repeated_orders)
        .where(F.col(REJECT_REASON).isNotNull())
        .select(SOURCE_ROW, *CANONICAL_COLUMNS, REJECT_REASON, REJECT_COLUMN)
    )


def _venue_id() -> Column:
    """``model.geo.venue_id`` as a column: coordinates rounded half-to-even like numpy."""
    lat_units = F.bround((F.col(VENUE_LAT) + LAT_LIMIT) * _ID_SCALE)
    lon_units = F.bround((F.col(VENUE_LON) + LON_LIMIT) * _ID_SCALE)
    return (lat_units * _LON_SPAN + lon_units).cast("long")


def clean_rows(labelled: DataFrame) -> DataFrame:
    """The clean events: UTC timestamps in place of the text, and the venue id (``CleanEvents``)."""
    columns = [
        F.col(_UTC.format(col)).alias(col) if col in TIMESTAMP_COLUMNS else F.col(col)
        for col in (SOURCE_ROW, *CANONICAL_COLUMNS)
    ]
    return labelled.where(F.col(REJECT_REASON).isNull()).select(
        *columns, _venue_id().alias(VENUE_ID)
    )


def _clean_violations() -> dict[str, Column]:
    """``schemas.CleanEvents``' checks as counts of clean rows that break them."""
    checks = {
        f"{EVENT_TIME} is null": F.col(_UTC.format(EVENT_TIME)).isNull(),
        f"{ORDER_CREATED} is after {EVENT_TIME}": F.col(_UTC.format(ORDER_CREATED))
        > F.col(_UTC.format(EVENT_TIME)),
    }
    for col in COORDINATE_COLUMNS:
        out = F.abs(F.col(col)) > COORDINATE_LIMITS[col]
        checks[f"{col} out of range"] = (
            out if col in (VENUE_LAT, VENUE_LON) else (out | F.col(col).isNull())
        )
    clean = F.col(REJECT_REASON).isNull()
    return {
        name: F.sum((clean & F.coalesce(check, F.lit(False))).cast("long"))
        for name, check in checks.items()
    }


def enforce_rejected_share(
    labelled: DataFrame,
    repeated_orders: DataFrame,
    rejected: DataFrame,
    max_rejected_fraction: float,
    area: dict[str, Any] | None = None,
) -> tuple[DataFrame, dict[str, Any]]:
    """Spark ``nodes.enforce_rejected_share``: the same report (with the service area, when
    given) and gate, from one aggregation of the labelled table (``rejected`` is the saved
    quarantine: the gate runs after it is written).

    The clean rows are also validated against ``schemas.CleanEvents``' checks in that pass.
    """
    del rejected  # an input only so that the quarantine is saved before the gate
    labelled = with_duplicate_orders(labelled, repeated_orders)
    counts = (
        labelled.groupBy(REJECT_REASON, REJECT_COLUMN)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.unix_micros(F.min(_UTC.format(EVENT_TIME))).alias("first"),
            F.unix_micros(F.max(_UTC.format(EVENT_TIME))).alias("last"),
            *(value.alias(name) for name, value in _clean_violations().items()),
        )
        .toPandas()
    )
    clean = counts[counts[REJECT_REASON].isna()]
    rejected_counts = counts[counts[REJECT_REASON].notna()]
    broken = {
        name: int(clean[name].sum())
        for name in _clean_violations()
        if len(clean) and clean[name].sum()
    }
    if broken:
        raise DataQualityError(f"Clean events on Spark break the CleanEvents checks: {broken}")
    rows_clean = int(clean["rows"].sum()) if len(clean) else 0
    micros = (lambda v: pd.Timestamp(int(v), unit="us", tz="UTC")) if rows_clean else None
    report = quality_report(
        rejected_counts.set_index([REJECT_REASON, REJECT_COLUMN])["rows"].astype("int64"),
        rows_clean,
        micros(clean["first"].iloc[0]) if rows_clean else None,
        micros(clean["last"].iloc[0]) if rows_clean else None,
        max_rejected_fraction,
        area=area,
    )
    logger.info(
        "Cleaning (Spark) kept %s rows and rejected %s",
        f"{report['rows_clean']:,}",
        f"{report['rows_rejected']:,}",
    )
    return clean_rows(labelled), report
