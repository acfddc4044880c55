"""`kedro run --pipelines shadow` in a project copy: the catalog's shadow log and clean events in,
the report in 08_reporting and the metrics in MLflow."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from geo_busyness.testing import tracking_uri
from tests.conftest import inside, make_project_copy, run_kedro
from tests.pipelines.shadow.test_nodes import CENTRE, H, _events, _line


@pytest.mark.slow  # a real KedroSession run
def test_the_shadow_pipeline_writes_the_report_and_logs_the_metrics(tmp_path):
    project = make_project_copy(tmp_path / "project")
    log = project / "data/07_model_output/shadow/shadow_predictions.jsonl"
    log.parent.mkdir(parents=True)
    lines = [
        _line(H, (2.0, 2.0), (3.0, 3.0)),
        _line(H + pd.Timedelta(hours=1), (1.0, 1.0), (0.0, 0.0)),
        _line(H + pd.Timedelta(hours=9), (1.0, 1.0), (1.0, 1.0)),  # not counted yet
    ]
    log.write_bytes(b"\n".join(lines) + b"\n")
    events = _events([(CENTRE, H, 3), (CENTRE, H + pd.Timedelta(hours=2), 1)])
    events.to_parquet(project / "data/03_primary/clean_events.parquet")

    run_kedro(project, ["shadow"])

    report = json.loads((project / "data/08_reporting/shadow/shadow_report.json").read_text())
    assert (report["scored_rows"], report["pending_rows"]) == (2, 1)
    (pair,) = report["pairs"]
    assert pair["champion"]["mae"] == pytest.approx(1.0)  # |3-2|, |0-1|
    assert pair["challenger"]["mae"] == pytest.approx(0.0)
    rows = pd.read_parquet(project / "data/07_model_output/shadow/shadow_scored_rows.parquet")
    assert rows["status"].tolist() == ["known", "known", "pending"]
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            (run,) = MlflowClient().search_runs(
                [e.experiment_id for e in MlflowClient().search_experiments()],
                "metrics.`shadow_metrics.challenger.mae` >= 0",
            )
        finally:
            mlflow.set_tracking_uri(None)
    assert run.data.metrics["shadow_metrics.champion.mae"] == pytest.approx(1.0)
    assert run.data.metrics["shadow_metrics.challenger.version"] == 4
