"""reporting run in memory (SequentialRunner, MemoryDatasets) on the tiny city's model outputs."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest
from matplotlib.figure import Figure

from geo_busyness.model.forecaster import LEARNED
from geo_busyness.pipelines.reporting.pipeline import FIGURES, MLFLOW_NODES, create_pipeline
from tests.pipelines.memory import run_in_memory

#: The whole reporting pipeline drawn in memory (every figure, the map, SHAP): seconds.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reported_in_memory(
    modeled_in_memory: dict[str, Any], features_in_memory: dict[str, Any], tiny_parameters
) -> dict[str, Any]:
    """Without the MLflow nodes; the evaluation report as a failed gate left it (unregistered)."""
    pipeline = create_pipeline()
    drawing = pipeline.only_nodes(*(n.name for n in pipeline.nodes if n.name not in MLFLOW_NODES))
    report = modeled_in_memory["evaluation_report_draft"] | {"registration": {"registered": False}}
    inputs = modeled_in_memory | features_in_memory | {"evaluation_report": report}
    return run_in_memory(drawing, inputs, tiny_parameters)


def test_every_title_names_the_model_version_and_the_data_window(
    reported_in_memory: dict[str, Any], features_in_memory: dict[str, Any]
) -> None:
    caption = reported_in_memory["figure_caption"]
    timezone = reported_in_memory["report_timezone"]
    start = pd.Timestamp(features_in_memory["time_windows"]["train_start"]).tz_convert(timezone)
    assert caption.startswith("model not registered (") and f"train {start:%Y-%m-%d}" in caption
    assert caption.endswith(f"({timezone})")
    for name in (*FIGURES, "busyness_map_plot"):
        assert caption in reported_in_memory[name].layout.title.text, name
    assert caption in reported_in_memory["shap_summary_figure"].get_suptitle()


def test_every_figure_is_drawn_with_data(reported_in_memory: dict[str, Any]) -> None:
    for name in FIGURES:
        figure = reported_in_memory[name]
        assert isinstance(figure, go.Figure), name
        assert figure.data, name


def test_the_map_and_the_report_page_open_with_the_header(
    reported_in_memory: dict[str, Any], tiny_parameters
) -> None:
    assert isinstance(reported_in_memory["busyness_map_plot"], go.Figure)
    assert {trace.type for trace in reported_in_memory["busyness_map_plot"].data} == {
        "choroplethmap"
    }
    # the city's time zone, from the data's source zone
    timezone = tiny_parameters["data_processing"]["source_timezone"]
    assert reported_in_memory["report_timezone"] == timezone
    for name in ("reporting_page", "busyness_map"):
        page = reported_in_memory[name]
        assert page.lstrip().lower().startswith("<!doctype html"), name
        assert page.count("<script src=") == 0, name  # offline: nothing fetched
        header = page[page.index('<header class="gb-header">') : page.index("</header>")]
        assert "not registered (" in header and f"{timezone}: every time" in header, name
        assert "failed, nothing registered" in header or "passed" in header, name
        assert "best baseline (" in header, name


def test_the_shap_summary_explains_the_chosen_forecaster(
    reported_in_memory: dict[str, Any], modeled_in_memory: dict[str, Any]
) -> None:
    summary = reported_in_memory["shap_summary"]
    chosen = modeled_in_memory["model_selection"]["chosen"]
    assert summary["method"] == chosen
    if chosen in LEARNED:
        assert len(summary["features"]) == len(modeled_in_memory["busyness_model"].feature_names_)
        assert summary["sample"]["rows_explained"] > 0
    else:
        assert "no learned feature contributions" in summary["statement"]
    assert isinstance(reported_in_memory["shap_summary_figure"], Figure)
