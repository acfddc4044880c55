"""Reporting nodes on tiny hand-made frames: what each figure draws, and the errors on bad input."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from geo_busyness.pipelines.reporting.maps import hexagon_outline, polygon_traces
from geo_busyness.pipelines.reporting.nodes import (
    busyness_by_hour_of_week_figure,
    busyness_map,
    error_by_cell_figure,
    error_by_hour_figure,
    feature_importance_figure,
    figures_page,
    forecast_timeline_figure,
    predicted_vs_actual_figure,
    select_map_hour,
)
from tests.pipelines.reporting.plotly_html import figures_in, parse_html

PARAMS = {
    "display_timezone": "America/Regina",  # UTC-6 all year
    "map_hour": None,
    "max_scatter_points": 5,
    "random_state": 0,
}
#: Seven resolution-7 cells around central Regina.
CELLS = sorted(h3.grid_disk(h3.latlng_to_cell(50.45, -104.6, 7), 1))
HOURS = pd.date_range("2026-03-02 00:00", periods=3, freq="h", tz="UTC")


@pytest.fixture
def predictions() -> pd.DataFrame:
    """A dense test panel: 7 cells x 3 hours; the second hour is the busiest."""
    panel = pd.MultiIndex.from_product([HOURS, CELLS], names=["hour", "h3_cell"]).to_frame(
        index=False
    )
    rng = np.random.default_rng(0)
    panel["busyness"] = rng.integers(0, 4, len(panel))
    panel.loc[panel["hour"] == HOURS[1], "busyness"] += 10
    panel["predicted_busyness"] = panel["busyness"] + 0.5
    return panel[["h3_cell", "hour", "predicted_busyness", "busyness"]]


@pytest.fixture
def baseline(predictions: pd.DataFrame) -> pd.DataFrame:
    """Baseline rows in another order, each off by 2 events."""
    frame = predictions[["h3_cell", "hour", "busyness"]].iloc[::-1].copy()
    frame["baseline_busyness"] = frame["busyness"] + 2.0
    return frame


def test_hexagon_outline_is_a_closed_hexagon() -> None:
    lons, lats = hexagon_outline(CELLS[0])
    assert len(lons) == len(lats) == 7
    assert (lons[0], lats[0]) == (lons[-1], lats[-1])
    centre_lat, centre_lon = h3.cell_to_latlng(CELLS[0])
    assert min(lats) < centre_lat < max(lats) and min(lons) < centre_lon < max(lons)


def test_busyness_map_draws_every_cell_of_the_busiest_hour_twice(predictions) -> None:
    figure = busyness_map(predictions, PARAMS)
    polygons = polygon_traces(figure)
    assert len(polygons) == 2 * len(CELLS)
    by_panel = {axis: [t.name for t in polygons if t.xaxis == axis] for axis in ("x", "x2")}
    assert by_panel["x"] == by_panel["x2"] == CELLS
    assert {trace.type for trace in figure.data} == {"scatter"}  # no geo/map traces (CDN)
    assert "2026-03-02 01:00 UTC" in figure.layout.title.text
    assert "Sun 19:00" in figure.layout.title.text  # the same hour in Regina
    assert figure.layout.yaxis.scaleanchor == "x" and figure.layout.yaxis2.scaleanchor == "x2"
    scales = [t.marker for t in figure.data if t.mode == "markers"]
    assert len(scales) == 2 and scales[0].cmax == scales[1].cmax  # one colour scale for both
    at_hour = predictions[predictions["hour"] == HOURS[1]]
    assert scales[0].cmax == at_hour["predicted_busyness"].max()


def test_map_hour_parameter_picks_the_hour_and_rejects_hours_outside_the_window(
    predictions,
) -> None:
    assert select_map_hour(predictions, "2026-03-02T02:00") == HOURS[2]  # naive = UTC
    assert select_map_hour(predictions, "2026-03-01T18:00-06:00") == HOURS[0]
    with pytest.raises(ValueError, match=r"reporting.map_hour='2026-03-05T00:00'.*2026-03-02"):
        select_map_hour(predictions, "2026-03-05T00:00")


def test_error_by_cell_map_colours_each_cell_by_its_mae(predictions, baseline) -> None:
    figure = error_by_cell_figure(predictions, baseline)
    assert sorted(trace.name for trace in polygon_traces(figure)) == CELLS
    (centres,) = [trace for trace in figure.data if trace.mode == "markers"]
    np.testing.assert_allclose(centres.marker.color, 0.5)  # every prediction is 0.5 off
    assert all("baseline MAE: 2.00" in text for text in centres.text)


def test_error_by_hour_compares_model_and_baseline_by_local_hour(predictions, baseline) -> None:
    figure = error_by_hour_figure(predictions, baseline, PARAMS)
    model, base = figure.data
    assert list(model.x) == [18, 19, 20]  # 00:00-02:00 UTC in Regina
    np.testing.assert_allclose(model.y, 0.5)
    np.testing.assert_allclose(base.y, 2.0)


def test_baseline_that_misses_cell_hours_is_rejected(predictions, baseline) -> None:
    with pytest.raises(ValueError, match="baseline_test_predictions misses 7"):
        forecast_timeline_figure(predictions, baseline[baseline["hour"] != HOURS[0]])
    with pytest.raises(ValueError, match=r"baseline_test_predictions lacks columns \['baseline"):
        forecast_timeline_figure(predictions, baseline.drop(columns="baseline_busyness"))


def test_forecast_timeline_sums_the_city_per_hour(predictions, baseline) -> None:
    actual, model, base = forecast_timeline_figure(predictions, baseline).data
    expected = predictions.groupby("hour")["busyness"].sum().to_numpy()
    np.testing.assert_allclose(actual.y, expected)
    np.testing.assert_allclose(model.y, expected + 0.5 * len(CELLS))
    np.testing.assert_allclose(base.y, expected + 2.0 * len(CELLS))


def test_predicted_vs_actual_samples_large_tables(predictions) -> None:
    points, mean_line, identity = predicted_vs_actual_figure(predictions, PARAMS).data
    assert len(points.x) == PARAMS["max_scatter_points"]
    assert identity.x[0] == 0 and identity.x[1] >= predictions["predicted_busyness"].max()
    counts = predictions["busyness"].value_counts()
    assert sorted(mean_line.x) == sorted(counts[counts >= 5].index)


def test_feature_importance_puts_the_largest_on_top() -> None:
    table = pd.DataFrame(
        {
            "feature": ["a", "b", "c"],
            "importance_mean": [0.1, 0.9, 0.4],
            "importance_std": [0.0, 0.1, 0.05],
        }
    )
    (bars,) = feature_importance_figure(table).data
    assert list(bars.y) == ["a", "c", "b"]  # plotly draws the last category on top
    with pytest.raises(ValueError, match=r"feature_importance lacks columns \['importance_std'\]"):
        feature_importance_figure(table.drop(columns="importance_std"))


def test_busyness_by_hour_of_week_averages_the_train_weeks() -> None:
    # Two Mondays 12:00 in Regina (18:00 UTC) with 3 and 5 events city-wide over two cells.
    hours = pd.to_datetime(["2026-03-02 18:00", "2026-03-09 18:00"], utc=True)
    panel = pd.DataFrame({"cell": [1, 2, 1, 2], "hour": hours.repeat(2), "busyness": [1, 2, 4, 1]})
    low, high, mean = busyness_by_hour_of_week_figure(panel, PARAMS).data
    assert list(mean.x) == [12] and list(mean.y) == [4.0]
    assert list(low.y) == [3] and list(high.y) == [5]


def test_figures_page_embeds_plotly_once_and_fetches_nothing(predictions, baseline) -> None:
    page = figures_page(
        timeline=forecast_timeline_figure(predictions, baseline),
        cells=error_by_cell_figure(predictions, baseline),
    )
    parsed = parse_html(page)
    assert parsed.sources == []  # no <script src>, <link href>: everything is inline
    assert sum("Plotly" in script and len(script) > 1_000_000 for script in parsed.scripts) == 1
    drawn = figures_in(page)
    assert [len(figure.data) for figure in drawn] == [3, len(CELLS) + 1]
    assert pio.from_json(drawn[1].to_json()).layout.title.text.startswith("Mean absolute error")
