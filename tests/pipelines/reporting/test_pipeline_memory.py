"""reporting run in memory (SequentialRunner, MemoryDatasets) on the tiny city's model outputs."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest
from matplotlib.figure import Figure

from geo_busyness.model.forecaster import LEARNED
from geo_busyness.pipelines.reporting.pipeline import FIGURES, create_pipeline
from tests.pipelines.memory import run_in_memory


@pytest.fixture(scope="module")
def reported_in_memory(
    modeled_in_memory: dict[str, Any], features_in_memory: dict[str, Any], tiny_parameters
) -> dict[str, Any]:
    return run_in_memory(create_pipeline(), modeled_in_memory | features_in_memory, tiny_parameters)


def test_every_figure_is_drawn_with_data(reported_in_memory: dict[str, Any]) -> None:
    for name in FIGURES:
        figure = reported_in_memory[name]
        assert isinstance(figure, go.Figure), name
        assert figure.data, name


def test_the_map_and_the_report_page(reported_in_memory: dict[str, Any]) -> None:
    assert isinstance(reported_in_memory["busyness_map"], go.Figure)
    assert reported_in_memory["busyness_map"].data
    page = reported_in_memory["reporting_page"]
    assert page.lstrip().lower().startswith("<!doctype html")
    assert page.count("<script src=") == 0  # offline: nothing fetched


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
