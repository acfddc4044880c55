"""Both engines on the same generated raw data (dirty rows included): identical clean and
quarantined rows per reason, quality report, windows, cell-hour counts and panels; and the
comparison fails when either engine's rule changes."""

from __future__ import annotations

import pandas as pd
import pytest

from geo_busyness.cleaning_rules import PandasRuleEngine
from geo_busyness.pipelines.data_processing.nodes import DataQualityError
from tests.spark.conftest import differences, run_pandas, run_spark

pytest.importorskip("pyspark")
from pyspark.sql import functions as F  # noqa: E402

pytestmark = pytest.mark.slow
DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def pandas_result(raw_csv, parameters):
    return run_pandas(raw_csv, parameters)


@pytest.fixture(scope="module")
def spark_result(spark, raw_csv, parameters):
    return run_spark(spark, raw_csv, parameters)


def test_the_sample_has_every_kind_of_dirty_row(pandas_result):
    reasons = set(pandas_result.report["rejected_by_reason"])
    assert {
        "missing_value",
        "unparsable_timestamp",
        "timestamp_out_of_range",
        "coordinates_out_of_range",
        "future_timestamp",
        "ping_before_order_creation",
        "duplicate_order",
    } <= reasons


def test_both_engines_give_identical_answers(pandas_result, spark_result):
    assert differences(pandas_result, spark_result) == []
    assert len(spark_result.counts) > 0
    assert spark_result.panel_report["windows"]["test"]["panel_rows"] > 0


def test_the_comparison_fails_when_the_spark_rule_changes(
    spark, raw_csv, parameters, pandas_result, monkeypatch
):
    from geo_busyness.spark.rules import SparkRuleEngine  # noqa: PLC0415

    # Planted drift on Spark: "future" starts a century later.
    monkeypatch.setattr(
        SparkRuleEngine,
        "instant",
        lambda self, moment: F.timestamp_micros(F.lit((moment.value // 1000) + 36_525 * DAY_US)),
    )
    drifted = run_spark(spark, raw_csv, parameters, features=False)
    found = differences(pandas_result, drifted)
    assert any("quality report" in line for line in found)
    assert any("rejected rows" in line for line in found)


def test_spark_validates_its_clean_rows_like_the_pandera_model(
    spark, raw_csv, parameters, monkeypatch
):
    from geo_busyness.spark.rules import SparkRuleEngine  # noqa: PLC0415

    # Planted drift on Spark: |lat| no longer taken, so negative out-of-range latitudes pass the
    # rule; the CleanEvents checks on the clean rows stop the run before anything is written.
    monkeypatch.setattr(SparkRuleEngine, "absolute", lambda self, values: values)
    with pytest.raises(DataQualityError, match="courier_lat out of range"):
        run_spark(spark, raw_csv, parameters, features=False)


def test_the_comparison_fails_when_the_pandas_rule_changes(
    raw_csv, parameters, spark_result, monkeypatch
):
    # Planted drift on pandas: "future" starts a century later.
    monkeypatch.setattr(
        PandasRuleEngine, "instant", lambda self, moment: moment + pd.Timedelta(days=36_525)
    )
    drifted = run_pandas(raw_csv, parameters, features=False)
    found = differences(drifted, spark_result)
    assert any("quality report" in line for line in found)
    assert any("rejected rows" in line for line in found)
