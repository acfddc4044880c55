"""The cleaning rules' primitives on Spark columns (``cleaning_rules.RuleEngine``): the same rule
definitions as the pandas engine, evaluated as column expressions."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F


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

    def is_missing(self, values: Column) -> Column:
        # pandas counts NaN as missing: the Spark map_to_canonical turns NaN coordinates to null.
        return values.isNull()

    def absolute(self, values: Column) -> Column:
        return F.abs(values)

    def instant(self, moment: pd.Timestamp) -> Column:
        return F.timestamp_micros(F.lit(moment.tz_convert("UTC").value // 1000))
