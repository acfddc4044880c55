"""Spark's timestamp parsing: text with a zone designator is taken at its offset (the zone test
runs its regex only where the text's tail holds a sign), naive text in the source zone."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("pyspark")

#: Text -> the UTC instant it means, naive times read in America/Regina (UTC-6, no DST).
CASES = {
    "2026-01-05T10:00:00": "2026-01-05T16:00:00Z",
    "2026-01-05 10:00:00.250": "2026-01-05T16:00:00.250Z",
    "2026-01-05T10:00:00Z": "2026-01-05T10:00:00Z",
    "2026-01-05T10:00:00+05:30": "2026-01-05T04:30:00Z",
    "2026-01-05T10:00:00-0300": "2026-01-05T13:00:00Z",
    "2026-01-05T10:00:00.123456+02": "2026-01-05T08:00:00.123456Z",
    # Minutes, no seconds, then a zone: Spark's cast alone refuses these; pandas reads them.
    "2026-01-05T10:00+01:00": "2026-01-05T09:00:00Z",
    "2026-01-05 10:30Z": "2026-01-05T10:30:00Z",
    "2026-01-05T10:00-0300": "2026-01-05T13:00:00Z",
    "2026-01-05T10:00": "2026-01-05T16:00:00Z",
}


def test_text_with_an_offset_is_taken_at_it_and_naive_text_in_the_source_zone(spark):
    from geo_busyness.spark.timestamps import with_utc_timestamps  # noqa: PLC0415

    frame = spark.createDataFrame([(text,) for text in CASES], "t string")
    parsed = with_utc_timestamps(frame, {"t": ("utc", "ambiguous")}, "ISO8601", "America/Regina")
    rows = parsed.selectExpr("t", "unix_micros(utc) AS us", "ambiguous").collect()
    got = {row.t: pd.Timestamp(row.us, unit="us", tz="UTC") for row in rows}
    assert got == {text: pd.Timestamp(utc) for text, utc in CASES.items()}
    assert not any(row.ambiguous for row in rows)


def test_both_engines_read_the_same_instants_from_the_same_text(spark):
    from geo_busyness.pipelines.data_processing.nodes import _parse_timestamps  # noqa: PLC0415
    from geo_busyness.spark.timestamps import with_utc_timestamps  # noqa: PLC0415

    texts = list(CASES)
    frame = spark.createDataFrame([(text,) for text in texts], "t string")
    parsed = with_utc_timestamps(frame, {"t": ("utc", "ambiguous")}, "ISO8601", "America/Regina")
    on_spark = {
        row.t: pd.Timestamp(row.us, unit="us", tz="UTC")
        for row in parsed.selectExpr("t", "unix_micros(utc) AS us").collect()
    }
    on_pandas, _, _ = _parse_timestamps(pd.Series(texts), "ISO8601", "America/Regina")
    assert on_spark == dict(zip(texts, on_pandas, strict=True))
