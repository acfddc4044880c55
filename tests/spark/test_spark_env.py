"""`kedro run --env spark --pipelines data_processing,feature_engineering` through a real
KedroSession: the hook's session (the tests' one, taken over), the Spark pipelines, the spark
catalog; its answers equal the pandas run's on the same raw file, a pandas `modeling` run
trains on what it wrote alone, and inference and monitoring read its clean events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from geo_busyness.spark import session as spark_session
from geo_busyness.testing import DATA_LAYERS
from tests.conftest import (
    SMALL_TRAINING,
    TrainedProject,
    copy_project,
    read_outputs,
    run_kedro,
)
from tests.pipelines.monitoring.test_pipeline import write_recent_window
from tests.spark.conftest import fitted_differences

#: Windows of the small sample (the modeling run takes SMALL_TRAINING whole).
WINDOWS = {"feature_engineering": SMALL_TRAINING["feature_engineering"]}
#: What feature_engineering pickles, and modeling reads.
PICKLES = (
    "05_model_input/count_history.pkl",
    "06_models/busyness_features.pkl",
    "06_models/leaky_reference_features.pkl",
)


def _report(project: Path, name: str) -> dict:
    return json.loads((project / "data" / "08_reporting" / name).read_text())


@pytest.fixture(scope="module")
def spark_project(spark, processed_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The processed sample's raw data alone (nothing a pandas run wrote), through
    `kedro run --env spark --pipelines data_processing,feature_engineering`."""
    project = copy_project(
        processed_project, tmp_path_factory.mktemp("spark") / "project", with_mlflow=False
    )
    for layer in DATA_LAYERS[1:]:
        shutil.rmtree(project / "data" / layer)
        (project / "data" / layer).mkdir()
    run_kedro(project, ["data_processing", "feature_engineering"], WINDOWS, env="spark")
    return project


@pytest.mark.slow
def test_the_spark_environment_matches_the_pandas_run(
    spark_project: Path, processed_project: Path, tmp_path: Path
):
    pandas_project = copy_project(processed_project, tmp_path / "pandas", with_mlflow=False)
    run_kedro(pandas_project, ["feature_engineering"], WINDOWS)
    project = spark_project

    assert _report(project, "data_quality_report.json") == _report(
        pandas_project, "data_quality_report.json"
    )
    data, expected = project / "data", pandas_project / "data"
    rejected = pd.read_parquet(data / "02_intermediate/spark/quarantine/rejected_events.parquet")
    assert (
        rejected["reject_reason"].value_counts().to_dict()
        == _report(project, "data_quality_report.json")["rejected_by_reason"]
    )
    for name in (
        "04_feature/cell_hour_counts.parquet",
        "04_feature/panels/train_panel.parquet",
        "04_feature/panels/validation_panel.parquet",
        "04_feature/panels/test_panel.parquet",
    ):
        pd.testing.assert_frame_equal(
            pd.read_parquet(data / name), pd.read_parquet(expected / name)
        )
    assert _report(project, "feature_engineering_report.json") == _report(
        pandas_project, "feature_engineering_report.json"
    )
    for name in PICKLES:
        spark_made, pandas_made = pd.read_pickle(data / name), pd.read_pickle(expected / name)
        assert fitted_differences(pandas_made, spark_made) == [], name


@pytest.mark.slow
def test_a_pandas_modeling_run_trains_on_what_the_spark_run_wrote(spark_project: Path):
    """Modeling reads the count history, the per-cell statistics, the windows, the counts and
    the reports; the Spark run wrote them all (no pandas clean_events in this project)."""
    assert not (spark_project / "data/03_primary/clean_events.parquet").exists()
    run_kedro(spark_project, ["modeling"], SMALL_TRAINING)
    report, predictions, baseline = read_outputs(spark_project)
    assert report["test"]["model"]["r2"] > 0
    assert len(predictions) == len(baseline) > 0
    assert report["leaky_reference_protocol"]["rows"] > 0


def test_an_environment_without_spark_settings_runs_the_pandas_pipelines(monkeypatch):
    selected, started = [], []
    monkeypatch.setattr(spark_session, "use_pipelines", selected.append)
    monkeypatch.setattr(spark_session, "start_session", lambda *a, **k: started.append(a))
    monkeypatch.setattr(
        spark_session,
        "_registry",
        lambda: SimpleNamespace(_pipelines_module=spark_session.SPARK_REGISTRY),
    )
    context = SimpleNamespace(config_loader={}, project_path=Path("p"))
    spark_session.activate_engine(context)
    assert selected == [spark_session.PANDAS_REGISTRY] and not started

    context = SimpleNamespace(
        config_loader={"spark": {"spark.master": "local[1]"}}, project_path=Path("p")
    )
    spark_session.activate_engine(context)
    spark_session.wait_for_session()  # the session starts in the background
    assert selected[-1] == spark_session.SPARK_REGISTRY and started


def test_a_failed_background_session_start_fails_the_wait(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("no Java here")

    monkeypatch.setattr(spark_session, "start_session", fail)
    spark_session.start_session_in_background({"spark.master": "local[1]"}, "p")
    with pytest.raises(RuntimeError, match="no Java here"):
        spark_session.wait_for_session()
    spark_session.wait_for_session()  # reported once; nothing left to wait for


@pytest.mark.slow
def test_inference_and_monitoring_read_the_clean_events_the_spark_run_wrote(
    spark, trained_project: TrainedProject, tmp_path: Path
):
    """`--env spark` inference and monitoring after a Spark-only data_processing (no pandas
    clean_events) read the Spark run's Parquet folder with pandas and answer as in the pandas
    environment on the same raw data and registered model."""
    on_pandas = copy_project(trained_project.path, tmp_path / "pandas", with_mlflow=True)
    on_spark = copy_project(trained_project.path, tmp_path / "spark", with_mlflow=True)
    (on_spark / "data/03_primary/clean_events.parquet").unlink()
    run_kedro(on_spark, ["data_processing"], env="spark")
    for project in (on_pandas, on_spark):
        write_recent_window(project, {})
    run_kedro(on_pandas, ["inference", "monitoring"])
    run_kedro(on_spark, ["inference", "monitoring"], env="spark")

    assert not (on_spark / "data/03_primary/clean_events.parquet").exists()
    forecast = "data/07_model_output/busyness_forecast.parquet"
    pd.testing.assert_frame_equal(
        pd.read_parquet(on_spark / forecast), pd.read_parquet(on_pandas / forecast)
    )
    assert _report(on_spark, "inference/inference_report.json") == _report(
        on_pandas, "inference/inference_report.json"
    )
    assert _report(on_spark, "monitoring/retrain_recommended.json") == _report(
        on_pandas, "monitoring/retrain_recommended.json"
    )
