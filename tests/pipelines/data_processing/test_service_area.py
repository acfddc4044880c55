"""Issue #23 item 4: processing refuses points outside the service area (configured, else
learned from the events with a margin) and points that only make sense swapped, each with its
own reason, and the quality report records the area checked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo_busyness.cleaning_rules import (
    AREA_BOUNDS,
    KM_PER_DEGREE,
    area_learning,
    learn_service_area,
)
from geo_busyness.model.geo import haversine_km
from geo_busyness.pipelines.data_processing.nodes import (
    area_histograms,
    enforce_rejected_share,
    map_to_canonical,
    service_area,
    split_clean_and_rejected,
)
from tests.pipelines.data_processing.conftest import processing_params

AS_OF = "2026-06-01T00:00:00Z"
#: Regina's core: every regular row falls in one 0.01-degree bin of latitude and of longitude.
CORE_LAT, CORE_LON = (50.45, 50.46), (-104.61, -104.60)
REGINA_ROWS = 200
NEW_YORK = (40.7580, -73.9855)
PARIS = (48.8566, 2.3522)


def regina_table(*points: tuple[float, float], rows: int = REGINA_ROWS) -> pd.DataFrame:
    """``rows`` clean Regina events in the core bins, then one event at each of ``points``."""
    rng = np.random.default_rng(7)
    lat = np.concatenate([rng.uniform(*CORE_LAT, rows), [p[0] for p in points]])
    lon = np.concatenate([rng.uniform(*CORE_LON, rows), [p[1] for p in points]])
    times = pd.Timestamp("2026-01-05T10:00:00") + pd.to_timedelta(np.arange(len(lat)), unit="min")
    return pd.DataFrame(
        {
            "courier_id": 1,
            "order_number": np.arange(len(lat)) + 10_000_000,
            "courier_location_timestamp": times.strftime("%Y-%m-%dT%H:%M:%S"),
            "courier_lat": lat,
            "courier_lon": lon,
            "order_created_timestamp": (times - pd.Timedelta(minutes=20)).strftime(
                "%Y-%m-%dT%H:%M:%S"
            ),
            "restaurant_lat": 50.455,
            "restaurant_lon": -104.605,
        }
    )


def process(
    raw: pd.DataFrame, **overrides: Any
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The pipeline's nodes on ``raw``: clean rows, the quarantine and the quality report."""
    params = processing_params(as_of=AS_OF, max_rejected_fraction=0.5, **overrides)
    canonical = map_to_canonical(raw, params["column_mapping"])
    area = service_area(canonical, params)
    clean, rejected = split_clean_and_rejected(canonical, params, area)
    clean, report = enforce_rejected_share(clean, rejected, params["max_rejected_fraction"], area)
    return clean, rejected, report


def reasons(rejected: pd.DataFrame) -> dict[int, tuple[str, str]]:
    """source_row -> (reason, column)."""
    return {
        int(row): (str(reason), str(column))
        for row, reason, column in rejected[
            ["source_row", "reject_reason", "reject_column"]
        ].itertuples(index=False)
    }


def test_new_york_paris_and_swapped_rows_of_a_regina_source_are_quarantined():
    swapped = (-104.6050, 50.4550)  # a Regina point with latitude and longitude swapped
    raw = regina_table(NEW_YORK, PARIS, swapped, NEW_YORK[::-1])
    clean, rejected, report = process(raw)
    n = REGINA_ROWS
    assert reasons(rejected) == {
        n: ("outside_service_area", "courier_lat"),
        n + 1: ("outside_service_area", "courier_lat"),
        n + 2: ("swapped_coordinates", "courier_lat"),
        # New York swapped is no Regina point either way round: outside.
        n + 3: ("outside_service_area", "courier_lat"),
    }
    assert clean["source_row"].tolist() == list(range(n))
    assert report["rejected_by_reason"] == {"outside_service_area": 3, "swapped_coordinates": 1}
    area = report["service_area"]
    assert area["source"] == "learned" and area["margin_km"] == 20 and area["quantile"] == 0.05
    assert area["located_events"] == n + 3  # the swapped Regina row is no located point
    assert area["lat_min"] < CORE_LAT[0] < CORE_LAT[1] < area["lat_max"]
    assert area["lon_min"] < CORE_LON[0] < CORE_LON[1] < area["lon_max"]
    assert "quantile" in area["rule"] and "margin_km" in area["rule"]


def test_a_row_just_inside_the_margin_is_kept_and_one_just_outside_is_not():
    params = processing_params(as_of=AS_OF)
    area = service_area(map_to_canonical(regina_table(), params["column_mapping"]), params)
    centre_lon = sum(CORE_LON) / 2
    inside = (area["lat_max"] - 0.001, centre_lon)  # ~110 m inside the northern edge
    outside = (area["lat_max"] + 0.001, centre_lon)
    east_inside = (sum(CORE_LAT) / 2, area["lon_max"] - 0.001)
    clean, rejected, report = process(regina_table(inside, outside, east_inside))
    n = REGINA_ROWS
    assert reasons(rejected) == {n + 1: ("outside_service_area", "courier_lat")}
    assert {n, n + 2} <= set(clean["source_row"])
    learned = report["service_area"]
    # Three rows more (1.5%) do not move the learned area.
    assert {key: learned[key] for key in AREA_BOUNDS} == {key: area[key] for key in AREA_BOUNDS}
    # The margin is 20 km from the core box (the bins holding the 5%..95% quantiles).
    north_edge_km = haversine_km(CORE_LAT[1], centre_lon, *inside)
    assert 19.8 < north_edge_km < 20.0
    assert haversine_km(CORE_LAT[1], centre_lon, *outside) > 20.0


def test_a_point_whose_swap_lands_in_the_area_is_swapped():
    """A New York source: (lat -73.98, lon 40.76) is in range, but only makes sense swapped."""
    rng = np.random.default_rng(3)
    points = np.column_stack(
        [NEW_YORK[0] + rng.normal(0, 0.01, 100), NEW_YORK[1] + rng.normal(0, 0.01, 100)]
    )
    raw = regina_table(*map(tuple, points), NEW_YORK[::-1], (140.7, -73.9), rows=0)
    clean, rejected, report = process(raw, source_timezone="America/New_York")
    assert reasons(rejected) == {
        100: ("swapped_coordinates", "courier_lat"),
        # |lat| > 90 with |lon| <= 90 reads as swapped whatever the area (a latitude typo in
        # the Americas reads so too: the range alone cannot tell them apart).
        101: ("swapped_coordinates", "courier_lat"),
    }
    assert len(clean) == 100 and report["service_area"]["source"] == "learned"


def test_a_configured_area_wins_over_the_learned_one():
    configured = {"lat_min": 50.455, "lat_max": 50.52, "lon_min": -104.70, "lon_max": -104.50}
    clean, rejected, report = process(regina_table(NEW_YORK), service_area=configured)
    assert report["service_area"] == {"source": "configured", **configured}
    # Regina rows south of 50.455 are outside the configured area, New York too.
    south = regina_table()["courier_lat"] < configured["lat_min"]
    assert set(rejected["source_row"]) == {*np.flatnonzero(south), REGINA_ROWS}
    assert set(rejected["reject_reason"]) == {"outside_service_area"}
    assert len(clean) == REGINA_ROWS - south.sum()


def test_without_learning_only_the_range_swap_is_refused():
    swapped = (-104.6050, 50.4550)
    clean, rejected, report = process(regina_table(NEW_YORK, swapped), learned_service_area=None)
    assert reasons(rejected) == {REGINA_ROWS + 1: ("swapped_coordinates", "courier_lat")}
    assert report["service_area"]["source"] == "none"
    assert REGINA_ROWS in set(clean["source_row"])


def test_a_cluster_below_the_quantile_cannot_widen_the_learned_area():
    params = processing_params(as_of=AS_OF)
    canonical = map_to_canonical(regina_table(*[PARIS] * 9), params["column_mapping"])
    lat_bins, lon_bins = area_histograms(canonical)
    assert lat_bins.sum() == lon_bins.sum() == REGINA_ROWS + 9
    tight = learn_service_area(lat_bins, lon_bins, quantile=0.05, margin_km=0)
    # 9 of 209 rows (4.3%) in Paris: the 95% quantile stays in Regina's bin.
    assert tight == {"lat_min": 50.45, "lat_max": 50.46, "lon_min": -104.61, "lon_max": -104.6}
    # With a lower quantile they are the bulk's edge: the box reaches Paris.
    wide = learn_service_area(lat_bins, lon_bins, quantile=0.01, margin_km=0)
    assert wide["lon_max"] == pytest.approx(2.36) and wide["lat_min"] == pytest.approx(48.85)
    # The margin in longitude holds at the box's most poleward latitude.
    grown = learn_service_area(lat_bins, lon_bins, quantile=0.05, margin_km=10)
    assert grown["lat_max"] - 50.46 == pytest.approx(10 / KM_PER_DEGREE, abs=1e-6)
    east_km = haversine_km(grown["lat_max"], -104.6, grown["lat_max"], grown["lon_max"])
    assert east_km == pytest.approx(10, abs=0.01)


@pytest.mark.parametrize(
    ("learning", "message"),
    [
        ({"quantile": 0.5, "margin_km": 20}, r"learned_service_area.quantile .* \[0, 0.5\)"),
        ({"quantile": "5%", "margin_km": 20}, "learned_service_area.quantile"),
        ({"quantile": 0.05, "margin_km": -1}, r"learned_service_area.margin_km .* >= 0"),
        ({"quantile": 0.05}, "learned_service_area.margin_km"),
    ],
)
def test_bad_learning_parameters_are_named(learning, message):
    with pytest.raises(ValueError, match=message):
        area_learning({"learned_service_area": learning})


def test_no_located_event_learns_no_area():
    params = processing_params(as_of=AS_OF)
    raw = regina_table((np.nan, -104.6), (95.0, -120.0), rows=0)
    canonical = map_to_canonical(raw, params["column_mapping"])
    area = service_area(canonical, params)
    assert area["source"] == "none" and "no event" in area["why"]
    _, rejected = split_clean_and_rejected(canonical, params, area)
    assert set(rejected["reject_reason"]) == {"missing_value", "coordinates_out_of_range"}
