"""The cleaning rules' primitives on Spark columns (``cleaning_rules.RuleEngine``): the same rule
definitions as the pandas engine, evaluated as column expressions."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

from geo_busyness.schemas import EARLIEST_TIME, LATEST_TIME


class SparkRuleEngine:
    """Columns of a Spark frame of canonical events (NaN coordinates already null), with parsed
    timestamps and ambiguity flags in the columns ``parsed`` and ``ambiguous`` name."""

    def __init__(self, parsed: dict[str, str], ambiguous: dict[str, str]) -> None:
        self._parsed, self._ambiguous = parsed, ambiguous

    def value(self, column: str) -> Column:
        return F.col(column)

    def parsed(self, column: str) -> Column:
        return F.col(self._parsed[column])

    def ambiguous(self, column: str) -> Column:
        return F.col(self._ambiguous[column])

    def out_of_range(self, column: str) -> Column:
        # Spark's timestamps hold years 1-9999: a far time parses, and is judged here. An
        # unparsed (null) time is not out of range: False, not null, since the unparsable
        # rule negates this mask.
        parsed = self.parsed(column)
        far = (parsed < self.instant(EARLIEST_TIME)) | (parsed >= self.instant(LATEST_TIME))
        return F.coalesce(far, F.lit(False))

    def is_missing(self, values: Column) -> Column:
        # pandas counts NaN as missing: the Spark map_to_canonical turns NaN coordinates to null.
        return values.isNull()

    def absolute(self, values: Column) -> Column:
        return F.abs(values)

    def instant(self, moment: pd.Timestamp) -> Column:
        return F.timestamp_micros(F.lit(moment.tz_convert("UTC").value // 1000))
