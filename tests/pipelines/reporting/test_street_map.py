"""The street map's parts: compact GeoJSON, a robust colour scale, the view, the hour frames."""

from __future__ import annotations

import json

import h3
import numpy as np
import pandas as pd
import pytest

from geo_busyness.pipelines.reporting.street_map import (
    cells_geojson,
    hourly_values,
    log_colorscale,
    map_view,
    robust_range,
    street_map_figure,
)

CELLS = sorted(h3.grid_disk(h3.latlng_to_cell(50.45, -104.6, 8), 2))
HOURS = pd.date_range("2026-03-02", periods=4, freq="h", tz="UTC")


def test_the_geojson_is_compact_closed_hexagons_named_by_cell() -> None:
    geojson = cells_geojson(CELLS)
    assert [feature["id"] for feature in geojson["features"]] == CELLS
    ring = geojson["features"][0]["geometry"]["coordinates"][0]
    assert len(ring) == 7 and ring[0] == ring[-1]
    lat, lon = h3.cell_to_latlng(CELLS[0])
    assert min(p[0] for p in ring) < lon < max(p[0] for p in ring)  # lon first (GeoJSON)
    assert all(round(value, 5) == value for point in ring for value in point)
    per_cell = len(json.dumps(geojson, separators=(",", ":"))) / len(CELLS)
    assert per_cell < 260  # bytes per hexagon


def test_one_busy_cell_does_not_wash_out_the_colour_scale() -> None:
    values = np.r_[np.arange(100) % 5, 400.0]  # 0..4, and one outlier
    low, high = robust_range(values)
    assert low == 0 and high == 4  # clipped at the 98th percentile, not at 400
    assert robust_range(np.zeros(10)) == (0.0, 1.0)  # a flat map still has a range
    assert robust_range(np.array([np.nan])) == (0.0, 1.0)


def test_the_view_fits_the_cells_box_into_one_map() -> None:
    centre, zoom = map_view(CELLS)
    assert centre["lat"] == pytest.approx(50.45, abs=0.02)
    assert centre["lon"] == pytest.approx(-104.6, abs=0.02)
    assert 11 <= zoom <= 15  # a few km across: street level, not the continent
    # Two clusters 0.5 degrees apart (the Bay Area's bike share): centred between them, and
    # the box fits: 0.5 degrees of latitude at 37.5 N in at most 300 px
    bay = [h3.latlng_to_cell(37.80, -122.40, 8), h3.latlng_to_cell(37.30, -121.90, 8)]
    centre, wide = map_view(bay)
    assert centre["lat"] == pytest.approx(37.55, abs=0.01)
    pixels = 512 * 2**wide / 360 * 0.5 / np.cos(np.radians(37.55))
    assert 200 < pixels <= 305 and wide < zoom


def test_the_colours_follow_the_log_of_the_value() -> None:
    scale = log_colorscale(99.0, steps=3)  # shares 0, 0.5, 1 of log1p(99) = log(100)
    positions = [position for position, _ in scale]
    np.testing.assert_allclose(positions, [0.0, 9.0 / 99.0, 1.0])  # half the colours by 9 of 99
    assert scale[0][1] == "rgb(255, 255, 204)" and scale[-1][1] == "rgb(128, 0, 38)"  # YlOrRd


def test_hourly_values_fill_cells_missing_in_an_hour_with_zero() -> None:
    frame = pd.DataFrame({"hour": [HOURS[0], HOURS[1]], "h3_cell": CELLS[:2], "busyness": [3, 5]})
    values = hourly_values(frame, CELLS[:3], HOURS[:2], "busyness")
    np.testing.assert_array_equal(values, [[3, 0, 0], [0, 5, 0]])


def test_frames_carry_values_only_and_shapes_are_checked() -> None:
    rng = np.random.default_rng(0)
    panels = {"actual": rng.poisson(2, (4, len(CELLS))).astype(float)}
    labels = [f"{hour:%H:00}" for hour in HOURS]
    figure = street_map_figure(CELLS, HOURS, panels, labels=labels, active=2, title="t")
    np.testing.assert_array_equal(figure.data[0].z, panels["actual"][2])
    assert [frame.name for frame in figure.frames] == labels
    spec = figure.to_plotly_json()
    assert all(set(frame["data"][0]) == {"type", "z"} for frame in spec["frames"])
    with pytest.raises(ValueError, match=r"map panel 'actual' has shape \(3, 19\)"):
        street_map_figure(
            CELLS, HOURS, {"actual": panels["actual"][:3]}, labels=labels, active=0, title="t"
        )
    with pytest.raises(ValueError, match="4 hours but 3 slider labels"):
        street_map_figure(CELLS, HOURS, panels, labels=labels[:3], active=0, title="t")
