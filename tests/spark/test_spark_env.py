"""`kedro run --env spark --pipelines data_processing,feature_engineering` through a real
KedroSession: the hook's session (the tests' one, taken over), the Spark pipelines, the spark
catalog; its answers equal the pandas run's on the same raw file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from geo_busyness.spark import session as spark_session
from tests.conftest import SMALL_TRAINING, copy_project, run_kedro


def _report(project: Path, name: str) -> dict:
    return json.loads((project / "data" / "08_reporting" / name).read_text())


@pytest.mark.slow
def test_the_spark_environment_matches_the_pandas_run(
    spark, processed_project: Path, tmp_path: Path
):
    pandas_project = copy_project(processed_project, tmp_path / "pandas", with_mlflow=False)
    params = {"feature_engineering": SMALL_TRAINING["feature_engineering"]}
    run_kedro(pandas_project, ["feature_engineering"], params)
    project = copy_project(processed_project, tmp_path / "spark", with_mlflow=False)
    run_kedro(project, ["data_processing", "feature_engineering"], params, env="spark")

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
    assert selected[-1] == spark_session.SPARK_REGISTRY and started
