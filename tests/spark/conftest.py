"""One SparkSession for every Spark test (local[2], small shuffles), and both engines' answers
on the same generated raw data (dirty rows included)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from geo_busyness.pipelines.data_generation.nodes import generate_events
from tests.pipelines.memory import project_parameters

#: The Spark settings of the tests: two cores, few shuffle partitions for small data.
TEST_SPARK = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
    "spark.ui.enabled": "false",
}
#: A small city: weeks enough for train, validation (5 d) and test (5 d) windows, 2% dirty.
GENERATION = {
    "n_events": 20_000,
    "weeks": 3,
    "n_restaurants": 40,
    "n_couriers": 60,
    "dirty_fraction": 0.02,
}
WINDOWS = {"feature_engineering": {"validation_days": 5, "test_days": 5}}


@pytest.fixture(scope="session")
def spark():
    """The session every Spark test (and a Kedro run in the spark env) shares; never stopped
    by a test (a Kedro run's hook takes it over with getOrCreate), ended with pytest."""
    pytest.importorskip("pyspark")
    from geo_busyness.spark.session import start_session  # noqa: PLC0415

    return start_session(TEST_SPARK, app_name="geo-busyness-tests")


@pytest.fixture(scope="session")
def parameters() -> dict[str, Any]:
    """The project's parameters for the small city."""
    return project_parameters({"data_generation": GENERATION} | WINDOWS)


@pytest.fixture(scope="session")
def raw_csv(tmp_path_factory: pytest.TempPathFactory, parameters: dict[str, Any]) -> Path:
    """The generated raw events, written as the reference CSV export, with a few times outside
    [1900, 2200) (both timestamp columns), which both engines must quarantine as such."""
    raw, _labels, _summary = generate_events(parameters["data_generation"])
    raw = raw.astype({"courier_location_timestamp": object, "order_created_timestamp": object})
    raw.loc[raw.index[10:13], "courier_location_timestamp"] = "9999-12-31T23:00:00"
    raw.loc[raw.index[20:22], "order_created_timestamp"] = "1850-06-01T12:00:00"
    path = tmp_path_factory.mktemp("raw") / "courier_events.csv"
    raw.to_csv(path, index=False)
    return path


@dataclass
class EngineResult:
    """What one engine made of the raw events."""

    rejected: pd.DataFrame  # source_row, reject_reason, reject_column (as text)
    report: dict[str, Any]
    clean_rows: pd.Series  # source_row of the clean events, sorted
    windows: dict[str, str] | None = None
    counts: pd.DataFrame | None = None
    panels: tuple[pd.DataFrame, ...] | None = None
    panel_report: dict[str, Any] | None = None


def _rejected_keys(rejected: pd.DataFrame) -> pd.DataFrame:
    keys = rejected[["source_row", "reject_reason", "reject_column"]].astype(
        {"reject_reason": str, "reject_column": str}
    )
    return keys.sort_values("source_row", ignore_index=True)


def run_pandas(raw_csv: Path, parameters: dict[str, Any], features: bool = True) -> EngineResult:
    """data_processing and feature_engineering's counts and panels, the pandas nodes."""
    from geo_busyness.pipelines.data_processing import nodes as dp  # noqa: PLC0415
    from geo_busyness.pipelines.feature_engineering import nodes as fe  # noqa: PLC0415

    processing = parameters["data_processing"]
    canonical = dp.map_to_canonical(pd.read_csv(raw_csv), processing["column_mapping"])
    candidates, rejected = dp.split_clean_and_rejected(canonical, processing)
    clean, report = dp.enforce_rejected_share(
        candidates, rejected, processing["max_rejected_fraction"]
    )
    result = EngineResult(
        _rejected_keys(rejected), report, clean["source_row"].sort_values(ignore_index=True)
    )
    if features:
        params = parameters["feature_engineering"]
        windows, train, _validation, _test, counts = fe.window_and_count_events(clean, params)
        transformer = fe.fit_busyness_features(train, windows, params)
        *panels, panel_report = fe.build_panels(counts, transformer, windows)
        result.windows, result.counts = windows, counts
        result.panels, result.panel_report = tuple(panels), panel_report
    return result


def run_spark(
    spark, raw_csv: Path, parameters: dict[str, Any], features: bool = True
) -> EngineResult:
    """The same, with the Spark nodes (the spark environment's pipelines)."""
    from geo_busyness.pipelines.data_processing import spark_nodes as dp  # noqa: PLC0415
    from geo_busyness.pipelines.feature_engineering import spark_nodes as fe  # noqa: PLC0415

    processing = parameters["data_processing"]
    raw = spark.read.csv(str(raw_csv), header=True)
    canonical = dp.map_to_canonical(raw, processing["column_mapping"])
    labelled = dp.split_clean_and_rejected(canonical, processing).cache()  # as if written
    repeated = dp.find_duplicate_orders(labelled)
    rejected = dp.quarantine_rejected(labelled, repeated).toPandas()
    clean, report = dp.enforce_rejected_share(
        labelled, repeated, rejected, processing["max_rejected_fraction"]
    )
    clean = clean.cache()
    result = EngineResult(
        _rejected_keys(rejected),
        report,
        clean.select("source_row").toPandas()["source_row"].sort_values(ignore_index=True),
    )
    if features:
        windows, counts = fe.window_and_count_events(clean, parameters["feature_engineering"])
        *panels, panel_report = fe.build_panels_from_counts(counts, windows)
        result.windows, result.counts = windows, counts
        result.panels, result.panel_report = tuple(panels), panel_report
    for frame in (clean, repeated, labelled):
        frame.unpersist()
    return result


def differences(expected: EngineResult, actual: EngineResult) -> list[str]:
    """Where two engines' answers differ (empty: identical)."""
    found = []
    if expected.report != actual.report:
        keys = [k for k in expected.report if expected.report[k] != actual.report.get(k)]
        found.append(f"quality report differs in {keys}")
    if not expected.rejected.equals(actual.rejected):
        found.append("rejected rows or their reasons differ")
    if not expected.clean_rows.equals(actual.clean_rows):
        found.append("clean rows differ")
    if expected.windows is not None and actual.windows is not None:
        if expected.windows != actual.windows:
            found.append("time windows differ")
        for name, left, right in (
            ("cell_hour_counts", expected.counts, actual.counts),
            *zip(
                ("train_panel", "validation_panel", "test_panel"),
                expected.panels,
                actual.panels,
                strict=True,
            ),
        ):
            try:
                pd.testing.assert_frame_equal(left, right)
            except AssertionError as error:
                found.append(f"{name} differs: {str(error).splitlines()[0]}")
        if expected.panel_report != actual.panel_report:
            found.append("feature engineering report differs")
    return found
