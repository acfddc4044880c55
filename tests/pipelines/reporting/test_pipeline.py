"""The reporting pipeline run by Kedro on a trained project: figures, the offline map, MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import plotly.io as pio
import pytest
from kedro.framework.project import configure_project

from geo_busyness.model.forecaster import LEARNED
from geo_busyness.pipeline_registry import register_pipelines
from geo_busyness.pipelines.reporting.maps import polygon_traces
from geo_busyness.pipelines.reporting.pipeline import FIGURES
from tests.conftest import TrainedProject, copy_project, project_mlflow, run_kedro
from tests.pipelines.reporting.plotly_html import figures_in, map_in, parse_html

#: The reporting outputs of runs, versioned: <name>/<save version>/<name>.
RUNS = Path("data") / "08_reporting" / "runs" / "reporting"


def _latest(project: Path, name: str) -> Path:
    """The latest run's copy of a reporting output."""
    return sorted((project / RUNS / name).glob(f"*/{name}"))[-1]


#: Traces each figure draws (error_by_cell: one polygon per cell plus the colour-bar trace).
TRACE_TYPES = {
    "predicted_vs_actual": ["heatmap", "scatter", "scatter", "scatter"],
    "forecast_timeline": ["scatter"] * 3,
    "error_by_hour": ["bar"] * 2,
    "feature_importance": ["bar"],
    "busyness_by_hour_of_week": ["scatter"] * 3,
}


@pytest.fixture(scope="module")
def reported(trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`kedro run --pipelines reporting` on a copy of the trained project."""
    project = copy_project(
        trained_project.path, tmp_path_factory.mktemp("reported") / "project", with_mlflow=True
    )
    run_kedro(project, ["reporting"])
    return project


def test_reporting_is_in_the_default_run_and_tagged() -> None:
    configure_project("geo_busyness")
    pipelines = register_pipelines()
    reporting = {node.name for node in pipelines["reporting"].nodes}
    assert reporting <= {node.name for node in pipelines["__default__"].nodes}
    assert all("reporting" in node.tags for node in pipelines["reporting"].nodes)


def test_figures_are_valid_plotly_json(reported: Path, trained_project: TrainedProject) -> None:
    for name, types in TRACE_TYPES.items():
        figure = pio.from_json(_latest(reported, f"{name}.json").read_text())
        assert [trace.type for trace in figure.data] == types, name
    cells = pio.from_json(_latest(reported, "error_by_cell.json").read_text())
    n_cells = trained_project.test_predictions["h3_cell"].nunique()
    assert len(polygon_traces(cells)) == n_cells
    importance = pio.from_json(_latest(reported, "feature_importance.json").read_text())
    table = pd.read_parquet(reported / "data/08_reporting/modeling/feature_importance.parquet")
    assert set(importance.data[0].y) == set(table["feature"])


def test_busyness_map_is_one_offline_html_file(
    reported: Path, trained_project: TrainedProject
) -> None:
    page = _latest(reported, "busyness_map.html").read_text()
    parsed = parse_html(page)
    external = [s for s in parsed.sources if s.startswith(("http://", "https://", "//"))]
    assert not external, f"the map fetches {external}"
    geojson, figure, frames = map_in(page)
    assert {trace["type"] for trace in figure["data"]} == {"choroplethmap"}
    predictions = trained_project.test_predictions
    cells = sorted(predictions["h3_cell"].unique())
    assert [feature["id"] for feature in geojson["features"]] == cells
    assert all(trace["locations"] == cells for trace in figure["data"])  # actual, predicted
    busiest = predictions.groupby("hour")["busyness"].sum().idxmax()
    assert f"{busiest.tz_convert('America/Regina'):%H:00}" in figure["layout"]["title"]["text"]
    local = predictions["hour"].dt.tz_convert("America/Regina")
    day = local.dt.date == busiest.tz_convert("America/Regina").date()
    assert len(frames) == predictions.loc[day, "hour"].nunique()  # the slider: that local day


def test_map_and_report_page_are_logged_to_mlflow(reported: Path) -> None:
    report_page = _latest(reported, "report.html").read_text()
    # SHAP beside the permutation importance, or neither for a statistical baseline
    assert len(figures_in(report_page)) in (len(FIGURES) + 1, len(FIGURES) - 1)
    with project_mlflow(reported) as client:
        experiment = client.get_experiment_by_name("geo-busyness")
        (run,) = client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
        )
        logged = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "reporting")}
        assert {
            "reporting/busyness_map.html",
            "reporting/report.html",
            "reporting/shap_summary.png",
            "reporting/shap_summary.json",
        } <= logged
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id,
            artifact_path="reporting/busyness_map.html",
            dst_path=str(reported / "downloaded"),
        )
    assert Path(local).read_text() == _latest(reported, "busyness_map.html").read_text()


def test_the_shap_summary_is_written_for_the_chosen_forecaster(reported: Path) -> None:
    """A PNG (kedro-viz previews it) and the table, for whichever forecaster was chosen."""
    summary = json.loads(_latest(reported, "shap_summary.json").read_text())
    selection = reported / "data" / "08_reporting" / "modeling" / "model_selection.json"
    chosen = json.loads(selection.read_text())["chosen"]
    assert summary["method"] == chosen
    if chosen in LEARNED:
        assert summary["features"] and summary["scale"]
    else:
        assert "there are no learned feature contributions" in summary["statement"]
    assert _latest(reported, "shap_summary.png").read_bytes().startswith(b"\x89PNG")
