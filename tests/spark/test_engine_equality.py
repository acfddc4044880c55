"""Both engines on the same generated raw data (dirty rows included): identical clean and
quarantined rows per reason, quality report, windows, cell-hour counts, panels, count history
and fitted per-cell statistics (busyness_features, leaky_reference_features); and the
comparison fails when either engine's cleaning rule or statistics window changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.cleaning_rules import PandasRuleEngine
from geo_busyness.model.event_summary import fit_window
from geo_busyness.pipelines.data_processing.nodes import DataQualityError
from tests.spark.conftest import differences, run_pandas, run_spark

pytest.importorskip("pyspark")
from pyspark.sql import functions as F  # noqa: E402

pytestmark = pytest.mark.slow
DAY_US = 86_400_000_000
HOUR = pd.Timedelta(hours=1)


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
        "swapped_coordinates",
        "coordinates_out_of_range",
        "outside_service_area",
        "future_timestamp",
        "ping_before_order_creation",
        "duplicate_order",
    } <= reasons
    assert (
        pandas_result.report["rejected_by_reason"]["outside_service_area"] == 3
    )  # NYC, Paris, NYC swapped
    assert pandas_result.report["service_area"]["source"] == "learned"


def test_the_comparison_fails_when_an_engine_learns_another_service_area(
    spark, raw_csv, parameters, pandas_result, monkeypatch
):
    from geo_busyness.pipelines.data_processing import spark_nodes  # noqa: PLC0415

    # Planted drift on Spark: its latitude histogram loses the rows of its northernmost bins.
    histograms = spark_nodes.area_histograms

    def drifted(canonical):
        lat_bins, lon_bins = histograms(canonical)
        return lat_bins[lat_bins.index < lat_bins.index.max() - 2], lon_bins

    monkeypatch.setattr(spark_nodes, "area_histograms", drifted)
    found = differences(pandas_result, run_spark(spark, raw_csv, parameters, features=False))
    assert any("quality report differs in ['service_area']" in line for line in found)


def test_both_engines_give_identical_answers(pandas_result, spark_result):
    assert differences(pandas_result, spark_result) == []
    assert len(spark_result.counts) > 0
    assert spark_result.panel_report["windows"]["test"]["panel_rows"] > 0
    # What modeling reads, and not trivially equal: restaurants, distances, a dense history.
    features = spark_result.features
    assert features.anchor_source_ == "restaurants" and features.unavailable_features_ == {}
    assert len(features.cells_) > 10 and np.isfinite(features.cell_hdist_).any()
    assert features.cell_restaurants_.max() > 1
    history = spark_result.history
    assert history.counts.sum() > 0 and list(history.cells) == list(features.cells_)
    reference = spark_result.reference_features
    assert reference.window_end_ > features.window_end_  # all events, not the train window's


def test_the_comparison_fails_when_the_spark_statistics_window_changes(
    spark, raw_csv, parameters, pandas_result, monkeypatch
):
    from geo_busyness.pipelines.feature_engineering import spark_nodes  # noqa: PLC0415

    # Planted drift on Spark: the statistics' windows end an hour late.
    monkeypatch.setattr(spark_nodes, "fit_window", lambda start, end: fit_window(start, end + HOUR))
    found = differences(pandas_result, run_spark(spark, raw_csv, parameters))
    assert any(line.startswith("features differs in .window_end_") for line in found)
    assert any(line.startswith("features differs in .history_") for line in found)
    assert any(line.startswith("reference_features differs") for line in found)


def test_the_comparison_fails_when_the_pandas_statistics_window_changes(
    raw_csv, parameters, spark_result, monkeypatch
):
    from geo_busyness.pipelines.feature_engineering import nodes  # noqa: PLC0415

    # Planted drift on pandas: the train statistics start an hour late.
    monkeypatch.setattr(nodes, "fit_window", lambda start, end: fit_window(start + HOUR, end))
    found = differences(run_pandas(raw_csv, parameters), spark_result)
    assert any(line.startswith("features differs in .window_start_") for line in found)
    assert any(line.startswith("features differs in .history_") for line in found)


def test_both_engines_agree_on_a_source_without_restaurants(spark, raw_csv, parameters):
    """No restaurant columns: the anchors are a sample of event locations, which Spark takes by
    sorting and numbering the points (more jobs than the restaurant case)."""
    mapping = parameters["data_processing"]["column_mapping"]
    rides = {
        **parameters,
        "data_processing": {
            **parameters["data_processing"],
            "column_mapping": {**mapping, "restaurant_lat": None, "restaurant_lon": None},
        },
    }
    expected, actual = run_pandas(raw_csv, rides), run_spark(spark, raw_csv, rides)
    assert differences(expected, actual) == []
    features = actual.features
    assert features.anchor_source_ == "events"
    assert len(features.anchors_) == features.max_anchor_points  # sampled from more events
    assert set(features.unavailable_features_) == {
        "dist_to_restaurant",
        "Hdist_to_restaurant",
        "restaurants_per_index",
    }


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
    # (Without a service area: a learned one would quarantine them as outside it.)
    monkeypatch.setattr(SparkRuleEngine, "absolute", lambda self, values: values)
    processing = {**parameters["data_processing"], "learned_service_area": None}
    with pytest.raises(DataQualityError, match="courier_lat out of range"):
        run_spark(spark, raw_csv, {**parameters, "data_processing": processing}, features=False)


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
