"""The retraining pipeline on Spark: the batches combine as the pandas node combines them, and
`kedro run --env spark --pipelines retraining` trains on what the pandas environment trains on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo_busyness.pipelines.retraining.nodes import combine_event_batches as on_pandas
from tests.conftest import QUICK_TRAINING, TrainedProject, copy_project, run_kedro, run_report
from tests.pipelines.monitoring.test_pipeline import write_recent_window
from tests.spark.conftest import fitted_differences

pytest.importorskip("pyspark")

HISTORY = pd.DataFrame(
    {
        "order_number": ["1", "2", "3", "3", None],
        "courier_lat": ["50.45", "50.46", None, None, "50.47"],
        "courier_location_timestamp": ["2026-01-05 10:00"] * 5,
    }
)
#: Two rows the history holds (one with nulls), two it does not, one of them twice.
RECENT = pd.DataFrame(
    {
        "courier_location_timestamp": ["2026-01-05 10:00"] * 5,
        "order_number": ["2", None, "4", "4", "3"],
        "courier_lat": ["50.46", "50.47", "50.48", "50.48", "50.99"],
    }
)


def test_the_batches_combine_on_spark_as_on_pandas(spark):
    from geo_busyness.pipelines.retraining.spark_nodes import combine_event_batches  # noqa: PLC0415

    history = spark.createDataFrame(HISTORY.astype(object).where(HISTORY.notna(), None))
    recent = spark.createDataFrame(RECENT.astype(object).where(RECENT.notna(), None))
    combined = combine_event_batches(history.coalesce(1), recent.coalesce(1)).toPandas()
    expected = on_pandas(HISTORY, RECENT)
    pd.testing.assert_frame_equal(
        combined.fillna(np.nan), expected.fillna(np.nan), check_dtype=False
    )
    assert len(combined) == 8  # 5 + the three recent rows the history lacks


def test_batches_with_other_columns_are_refused_on_spark(spark):
    from geo_busyness.pipelines.retraining.spark_nodes import combine_event_batches  # noqa: PLC0415

    history = spark.createDataFrame(HISTORY.fillna(""))
    recent = spark.createDataFrame(RECENT.drop(columns="courier_lat").fillna(""))
    with pytest.raises(ValueError, match=r"only one of them has \['courier_lat'\]"):
        combine_event_batches(history, recent)


def _report(project: Path, name: str) -> dict:
    return json.loads((project / "data" / "08_reporting" / name).read_text())


@pytest.mark.slow
def test_a_spark_retraining_trains_on_what_a_pandas_retraining_trains_on(
    spark, trained_project: TrainedProject, tmp_path: Path
):
    """History + a recent week through `--pipelines retraining` in both environments: the same
    quality report, panels, count history, statistics and test metrics."""
    projects = {}
    for env in ("pandas", "spark"):
        project = copy_project(trained_project.path, tmp_path / env, with_mlflow=True)
        write_recent_window(project, {})
        run_kedro(project, ["retraining"], QUICK_TRAINING, env=None if env == "pandas" else "spark")
        projects[env] = project
    on_spark, on_pandas_env = projects["spark"], projects["pandas"]
    assert (on_spark / "data/03_primary/spark/clean_events.parquet").is_dir()  # Spark cleaned
    assert _report(on_spark, "data_quality_report.json") == _report(
        on_pandas_env, "data_quality_report.json"
    )
    for name in ("04_feature/cell_hour_counts.parquet", "04_feature/panels/test_panel.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(on_spark / "data" / name),
            pd.read_parquet(on_pandas_env / "data" / name),
        )
    for name in ("05_model_input/count_history.pkl", "06_models/busyness_features.pkl"):
        spark_made = pd.read_pickle(on_spark / "data" / name)
        pandas_made = pd.read_pickle(on_pandas_env / "data" / name)
        assert fitted_differences(pandas_made, spark_made) == [], name
    history = pd.read_pickle(on_spark / "data/05_model_input/count_history.pkl")
    trained = pd.read_pickle(trained_project.path / "data/05_model_input/count_history.pkl")
    assert history.hours > trained.hours  # the recent week is in
    assert run_report(on_spark)["test"] == run_report(on_pandas_env)["test"]
