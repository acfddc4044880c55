"""The HTML pages: the header first, plotly.js once and inline, SHAP beside the permutation
importance with why they differ, the map's GeoJSON written once."""

from __future__ import annotations

import html

import h3
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from geo_busyness.pipelines.reporting.page import (
    WHY_THEY_DIFFER,
    map_page,
    report_page,
    shap_importance_figure,
)
from geo_busyness.pipelines.reporting.pipeline import FIGURES
from geo_busyness.pipelines.reporting.street_map import street_map_figure
from geo_busyness.report_header import report_context
from tests.pipelines.reporting.plotly_html import figures_in, map_in, parse_html
from tests.pipelines.reporting.reports import REPORT, WINDOWS

CONTEXT = report_context(REPORT, WINDOWS, "America/Regina")
SHAP = {
    "scale": "log ratio to the cell's seasonal profile",
    "features": [
        {"feature": "lag_24", "mean_abs_contribution": 0.30, "mean_contribution": 0.0},
        {"feature": "hour_of_week", "mean_abs_contribution": 0.10, "mean_contribution": 0.0},
    ],
}
BASELINE_SHAP = {
    "features": [],
    "scale": None,
    "statement": "The served forecaster is the statistical baseline 'seasonal_naive'.",
}


def _figures() -> dict[str, go.Figure]:
    return {name: go.Figure(go.Bar(x=[1], y=[2]), layout={"title": name}) for name in FIGURES}


def _is_plotly_js(script: str) -> bool:
    return "Plotly" in script and len(script) > 1_000_000


def test_the_report_opens_with_the_header_and_draws_every_figure_offline() -> None:
    page = report_page(CONTEXT, SHAP, **_figures())
    body = page[page.index("<body>") :]
    assert body.index('class="gb-header"') < body.index("<section")  # the header comes first
    assert "version 4 (gradient_boosting)" in page and "best baseline (recent level)" in page
    parsed = parse_html(page)
    assert parsed.sources == []  # nothing fetched
    assert sum(_is_plotly_js(script) for script in parsed.scripts) == 1
    titles = [figure.layout.title.text for figure in figures_in(page)]
    assert set(FIGURES) <= set(titles) and len(titles) == len(FIGURES) + 1  # + SHAP


def test_shap_is_beside_the_permutation_importance_with_why_they_differ() -> None:
    page = report_page(CONTEXT, SHAP, **_figures())
    explanation = page[page.index("<h2>Explanation</h2>") :]
    explanation = explanation[: explanation.index("</section>")]
    assert html.escape(WHY_THEY_DIFFER) in explanation
    assert explanation.index('id="shap_importance"') < explanation.index(
        'id="feature_importance_figure"'
    )
    (bars,) = shap_importance_figure(SHAP).data
    assert list(bars.y) == ["hour_of_week", "lag_24"]  # largest on top


def test_a_baseline_s_explanation_is_its_statement_not_empty_axes() -> None:
    page = report_page(CONTEXT, BASELINE_SHAP, **_figures())
    explanation = page[page.index("<h2>Explanation</h2>") :]
    explanation = explanation[: explanation.index("</section>")]
    assert "statistical baseline &#x27;seasonal_naive&#x27;" in explanation
    assert "<div" not in explanation  # no figure
    with pytest.raises(ValueError, match="shap_summary lacks 'features'"):
        shap_importance_figure({"scale": None})


def test_a_missing_figure_is_named() -> None:
    figures = _figures()
    del figures["error_by_hour_figure"]
    with pytest.raises(ValueError, match=r"report_page lacks figures \['error_by_hour_figure'\]"):
        report_page(CONTEXT, SHAP, **figures)


def test_the_map_page_writes_the_geometry_once_for_both_maps() -> None:
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(50.45, -104.6, 8), 3))
    hours = pd.date_range("2026-03-02", periods=3, freq="h", tz="UTC")
    values = np.arange(3 * len(cells), dtype=float).reshape(3, len(cells))
    figure = street_map_figure(
        cells,
        hours,
        {"actual": values, "predicted": values / 2},
        labels=["a", "b", "c"],
        active=0,
        title="map",
    )
    page = map_page(CONTEXT, figure)
    (script,) = [s for s in parse_html(page).scripts if "var geo=" in s]
    assert script.count('"FeatureCollection"') == 1
    geo, spec, frames = map_in(page)
    assert [feature["id"] for feature in geo["features"]] == cells
    assert [trace["type"] for trace in spec["data"]] == ["choroplethmap"] * 2
    assert all("geojson" not in trace for trace in spec["data"])  # put back in the browser
    assert [frame["name"] for frame in frames] == ["a", "b", "c"]
    assert frames[2]["data"][1]["z"] == list(values[2] / 2)
    parsed = parse_html(page)
    assert parsed.sources == [] and sum(_is_plotly_js(s) for s in parsed.scripts) == 1
    assert page.index('class="gb-header"') < page.index('id="busyness-map"')
