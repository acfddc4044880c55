"""One SparkSession for every Spark test (local[2], small shuffles), and both engines' answers
on the same generated raw data (dirty rows included)."""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

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
#: Courier points of other cities put in the Regina sample: New York, Paris, New York swapped.
STRAY_POINTS = [[40.7580, -73.9855], [48.8566, 2.3522], [-73.9855, 40.7580]]


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
    [1900, 2200) (both timestamp columns), which both engines must quarantine as such, and a
    few clean rows moved to New York and Paris (outside the area the Regina rows cover)."""
    raw, labels, _summary = generate_events(parameters["data_generation"])
    raw = raw.astype({"courier_location_timestamp": object, "order_created_timestamp": object})
    raw.loc[raw.index[10:13], "courier_location_timestamp"] = "9999-12-31T23:00:00"
    raw.loc[raw.index[20:22], "order_created_timestamp"] = "1850-06-01T12:00:00"
    unique_order = ~raw["order_number"].duplicated(keep=False)
    clean = np.flatnonzero(unique_order & ~raw.index.isin(labels["source_row"]))
    strays = clean[clean >= 40][: len(STRAY_POINTS)]
    raw.loc[raw.index[strays], ["courier_lat", "courier_lon"]] = STRAY_POINTS
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
    features: Any = None  # busyness_features
    reference_features: Any = None  # leaky_reference_features
    history: Any = None  # count_history


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
    area = dp.service_area(canonical, processing)
    candidates, rejected = dp.split_clean_and_rejected(canonical, processing, area)
    clean, report = dp.enforce_rejected_share(
        candidates, rejected, processing["max_rejected_fraction"], area
    )
    result = EngineResult(
        _rejected_keys(rejected), report, clean["source_row"].sort_values(ignore_index=True)
    )
    if features:
        summaries = fe.window_and_summarise_events(clean, parameters["feature_engineering"])
        _feature_engineering(result, summaries, parameters)
    return result


def _feature_engineering(result: EngineResult, summaries: tuple, parameters: dict) -> None:
    """The engine-free feature_engineering nodes on an engine's windows, counts and summaries
    (what both pipelines run after ``window_and_summarise_events``)."""
    from geo_busyness.pipelines.feature_engineering import nodes as fe  # noqa: PLC0415

    params = parameters["feature_engineering"]
    windows, counts, train, everything = summaries
    result.features = fe.fit_busyness_features(train, params)
    result.reference_features = fe.fit_reference_features(everything, params)
    result.history = fe.build_count_history(counts, result.features, windows, "UTC")
    *panels, panel_report = fe.build_panels(counts, result.features, windows)
    result.windows, result.counts = windows, counts
    result.panels, result.panel_report = tuple(panels), panel_report


def run_spark(
    spark, raw_csv: Path, parameters: dict[str, Any], features: bool = True
) -> EngineResult:
    """The same, with the Spark nodes (the spark environment's pipelines)."""
    from geo_busyness.pipelines.data_processing import spark_nodes as dp  # noqa: PLC0415
    from geo_busyness.pipelines.feature_engineering import spark_nodes as fe  # noqa: PLC0415

    processing = parameters["data_processing"]
    raw = spark.read.csv(str(raw_csv), header=True)
    canonical = dp.map_to_canonical(raw, processing["column_mapping"])
    area = dp.service_area(canonical, processing)
    labelled = dp.split_clean_and_rejected(canonical, processing, area).cache()  # as if written
    repeated = dp.find_duplicate_orders(labelled)
    rejected = dp.quarantine_rejected(labelled, repeated).toPandas()
    clean, report = dp.enforce_rejected_share(
        labelled, repeated, rejected, processing["max_rejected_fraction"], area
    )
    clean = clean.cache()
    result = EngineResult(
        _rejected_keys(rejected),
        report,
        clean.select("source_row").toPandas()["source_row"].sort_values(ignore_index=True),
    )
    if features:
        summaries = fe.window_and_summarise_events(clean, parameters["feature_engineering"])
        _feature_engineering(result, summaries, parameters)
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
        for name in ("features", "reference_features", "history"):
            found += [
                f"{name} differs in {where}"
                for where in fitted_differences(getattr(expected, name), getattr(actual, name))
            ]
    return found


def fitted_differences(left: Any, right: Any, where: str = "") -> list[str]:
    """Where two fitted objects (estimators, dataclasses, and what they hold) differ: exact
    values, dtypes included (empty: identical)."""
    if type(left) is not type(right):
        return [f"{where or 'type'}: {type(left).__name__} != {type(right).__name__}"]
    if is_dataclass(left) or isinstance(left, BaseEstimator):
        left, right = vars(left), vars(right)
    if isinstance(left, dict):
        if left.keys() != right.keys():
            return [f"{where}: keys {sorted(set(left) ^ set(right))}"]
        return [d for k in left for d in fitted_differences(left[k], right[k], f"{where}.{k}")]
    if isinstance(left, list | tuple) and len(left) == len(right):
        pairs = enumerate(zip(left, right, strict=True))
        return [d for i, (a, b) in pairs for d in fitted_differences(a, b, f"{where}[{i}]")]
    return [] if _same_value(left, right) else [where]


def _same_value(left: Any, right: Any) -> bool:
    """Whether two values of one type are identical (arrays and pandas objects: dtypes too)."""
    if isinstance(left, np.ndarray):
        nan_equal = left.dtype.kind in "fc"
        return left.dtype == right.dtype and np.array_equal(left, right, equal_nan=nan_equal)
    if isinstance(left, pd.Series | pd.DataFrame | pd.Index):
        return left.equals(right) and _dtypes(left) == _dtypes(right)
    if isinstance(left, float) and np.isnan(left):
        return np.isnan(right)
    return left == right


def _dtypes(frame: pd.Series | pd.DataFrame | pd.Index) -> Any:
    """The dtypes of a pandas object, index levels included."""
    own = frame.dtypes.tolist() if isinstance(frame, pd.DataFrame) else [frame.dtype]
    index = (
        [] if isinstance(frame, pd.Index) else [getattr(frame.index, "dtypes", frame.index.dtype)]
    )
    return [*own, *map(str, index)]
