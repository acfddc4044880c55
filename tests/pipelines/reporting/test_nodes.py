"""Reporting nodes on tiny hand-made frames: what each figure draws, in which time zone, and the
errors on bad input."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from geo_busyness.pipelines.reporting.maps import hexagon_outline, polygon_traces
from geo_busyness.pipelines.reporting.nodes import (
    busyness_by_hour_of_week_figure,
    busyness_map,
    count_grid,
    error_by_cell_figure,
    error_by_hour_figure,
    feature_importance_figure,
    forecast_timeline_figure,
    predicted_vs_actual_figure,
    run_context,
    select_map_hour,
)
from tests.pipelines.reporting.reports import REPORT, WINDOWS

PARAMS = {
    "display_timezone": "America/Regina",  # UTC-6 all year
    "map_hour": None,
    "max_scatter_points": 5,
    "random_state": 0,
}
TZ = PARAMS["display_timezone"]
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
    panel["horizon_hours"] = panel["hour"].dt.hour + 1
    return panel[["h3_cell", "hour", "predicted_busyness", "busyness", "horizon_hours"]]


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


def test_busyness_map_is_a_street_map_with_an_hour_slider(predictions) -> None:
    figure = busyness_map(predictions, PARAMS, TZ, "model v2")
    actual, predicted = figure.data
    assert actual.type == predicted.type == "choroplethmap"
    assert list(actual.locations) == list(predicted.locations) == CELLS
    assert figure.layout.map.style == figure.layout.map2.style == "white-bg"  # nothing fetched
    (streets,) = figure.layout.map.layers  # OpenStreetMap tiles under the hexagons
    assert streets.below == "traces" and "tile.openstreetmap.org" in streets.source[0]
    assert (actual.subplot, predicted.subplot) == ("map", "map2")
    # 00:00-02:00 UTC is Sunday 18:00-20:00 in Regina, all one local day: three slider steps
    steps = figure.layout.sliders[0].steps
    assert [step.label for step in steps] == [
        "Sun 18:00 (h+1)",
        "Sun 19:00 (h+2)",
        "Sun 20:00 (h+3)",
    ]
    assert figure.layout.sliders[0].active == 1  # the busiest hour is shown first
    at_busiest = predictions[predictions["hour"] == HOURS[1]].sort_values("h3_cell")
    np.testing.assert_allclose(actual.z, at_busiest["busyness"])
    np.testing.assert_allclose(predicted.z, at_busiest["predicted_busyness"])
    last = figure.frames[2]
    at_last = predictions[predictions["hour"] == HOURS[2]].sort_values("h3_cell")
    np.testing.assert_allclose(last.data[1].z, at_last["predicted_busyness"])
    assert "geojson" not in last.data[0].to_plotly_json()  # frames carry values only
    assert actual.zmax == predicted.zmax  # one colour scale for both
    title = figure.layout.title.text
    assert "Sun 2026-03-01 (America/Regina)" in title and "busiest hour, 19:00" in title
    assert "model v2" in title


def test_busyness_map_slides_over_the_local_day_of_the_map_hour(predictions) -> None:
    """In Tokyo the three hours fall on one local day; where they straddle local midnight only
    the map hour's day is on the slider."""
    figure = busyness_map(predictions, {**PARAMS, "map_hour": "2026-03-02T00:00"}, "Asia/Tokyo")
    steps = figure.layout.sliders[0].steps  # Tokyo: 09:00-11:00 on Monday
    assert [step.label for step in steps][0] == "Mon 09:00 (h+1)"
    split = busyness_map(predictions, {**PARAMS, "map_hour": "2026-03-02T00:00"}, "Etc/GMT+1")
    assert len(split.layout.sliders[0].steps) == 1  # UTC-1: 23:00 on one day, 00:00 the next


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
    figure = error_by_hour_figure(predictions, baseline, TZ)
    model, base = figure.data
    assert list(model.x) == [18, 19, 20]  # 00:00-02:00 UTC in Regina
    np.testing.assert_allclose(model.y, 0.5)
    np.testing.assert_allclose(base.y, 2.0)


def test_baseline_that_misses_cell_hours_is_rejected(predictions, baseline) -> None:
    with pytest.raises(ValueError, match="baseline_test_predictions misses 7"):
        forecast_timeline_figure(predictions, baseline[baseline["hour"] != HOURS[0]], TZ)
    with pytest.raises(ValueError, match=r"baseline_test_predictions lacks columns \['baseline"):
        forecast_timeline_figure(predictions, baseline.drop(columns="baseline_busyness"), TZ)


def test_forecast_timeline_sums_the_city_per_hour_in_local_time(predictions, baseline) -> None:
    figure = forecast_timeline_figure(predictions, baseline, TZ)
    actual, model, base = figure.data
    # the same local hours as error by hour: 00:00 UTC is 18:00 the day before in Regina
    assert pd.Timestamp(actual.x[0]) == pd.Timestamp("2026-03-01 18:00")
    assert figure.layout.xaxis.title.text == f"hour ({TZ})"
    expected = predictions.groupby("hour")["busyness"].sum().to_numpy()
    np.testing.assert_allclose(actual.y, expected)
    np.testing.assert_allclose(model.y, expected + 0.5 * len(CELLS))
    np.testing.assert_allclose(base.y, expected + 2.0 * len(CELLS))


def test_predicted_vs_actual_counts_cell_hours_per_bin(predictions) -> None:
    counts, mean_line, identity, points = predicted_vs_actual_figure(predictions, PARAMS).data
    assert counts.type == "heatmap"
    assert np.nansum(np.asarray(counts.customdata)) == len(predictions)  # every cell-hour once
    assert points.visible == "legendonly" and len(points.x) == PARAMS["max_scatter_points"]
    assert identity.x[0] == 0 and identity.x[1] >= predictions["predicted_busyness"].max()
    counted = predictions["busyness"].value_counts()
    assert sorted(mean_line.x) == sorted(counted[counted >= 5].index)


def test_a_pile_of_zeros_is_one_readable_bin() -> None:
    """3,192 quiet cell-hours at 0 and a few busy ones: the zeros are one bin holding 3,192
    (shaded on a log scale), not thousands of overlapping points."""
    actual = np.r_[np.zeros(3192), [1, 2, 2, 7]]
    predicted = np.r_[np.full(3192, 0.05), [0.8, 1.9, 2.2, 5.0]]
    counts, x_mid, y_mid = count_grid(actual, predicted)
    assert counts.sum() == len(actual) and counts.max() == 3192
    assert list(x_mid[:3]) == [0.0, 1.0, 2.0]  # one bin per actual count
    assert counts[0, 0] == 3192 and y_mid[0] < 0.1
    figure = predicted_vs_actual_figure(
        pd.DataFrame({"busyness": actual, "predicted_busyness": predicted}), PARAMS
    )
    assert list(figure.data[0].colorbar.ticktext) == ["1", "10", "100", "1,000"]
    assert figure.layout.xaxis.range[1] < 7  # the view starts at the low counts, not at 7


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
    low, high, mean = busyness_by_hour_of_week_figure(panel, TZ).data
    assert list(mean.x) == [12] and list(mean.y) == [4.0]
    assert list(low.y) == [3] and list(high.y) == [5]


class _Model:
    timezone = "Europe/Paris"


def test_the_time_zone_is_the_parameter_else_the_model_s() -> None:
    context, caption, timezone = run_context(REPORT, WINDOWS, _Model(), PARAMS)
    assert timezone == context["timezone"] == TZ and caption.endswith(f"({TZ})")
    context, caption, timezone = run_context(
        REPORT, WINDOWS, _Model(), {**PARAMS, "display_timezone": None}
    )
    assert timezone == "Europe/Paris" and caption.endswith("(Europe/Paris)")
