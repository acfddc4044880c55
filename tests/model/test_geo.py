"""Distances and venue ids from coordinates."""

from __future__ import annotations

import math

import h3
import numpy as np
import pandas as pd
import pytest

from geo_busyness.model import geo
from geo_busyness.model.geo import (
    EARTH_RADIUS_KM,
    cell_centres,
    cell_ids,
    cell_names,
    cell_neighbours,
    euclidean_deg,
    h3_cells,
    haversine_km,
    venue_id,
)

# Nashville (BNA) to Los Angeles (LAX): the textbook Haversine example, worked by hand with
# R = 6372.8 km (it is also Rosetta Code's reference answer).
BNA = (36.12, -86.67)
LAX = (33.94, -118.40)
BNA_TO_LAX_KM = 2887.2599506071106


def test_earth_radius_is_the_reference_notebooks():
    assert EARTH_RADIUS_KM == 6372.8


def test_haversine_known_distance():
    assert haversine_km(*BNA, *LAX) == pytest.approx(BNA_TO_LAX_KM, abs=1e-6)


def test_haversine_quarter_meridian_is_a_quarter_of_the_circumference():
    assert haversine_km(0.0, 0.0, 90.0, 0.0) == pytest.approx(math.pi / 2 * 6372.8, rel=1e-12)
    assert haversine_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(math.pi / 2 * 6372.8, rel=1e-12)


def test_haversine_is_symmetric_and_zero_for_identical_points():
    assert haversine_km(*LAX, *BNA) == pytest.approx(haversine_km(*BNA, *LAX), rel=1e-15)
    assert haversine_km(*BNA, *BNA) == 0.0
    lat = np.array([50.4, -33.9, 0.0, 89.9])
    lon = np.array([-104.6, 151.2, 0.0, -179.9])
    np.testing.assert_array_equal(haversine_km(lat, lon, lat, lon), np.zeros(4))


def test_haversine_across_the_antimeridian_is_short():
    # 1 degree of longitude on the equator, whichever way round the +-180 seam it is written.
    one_degree = 2 * math.pi * 6372.8 / 360
    assert haversine_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(one_degree, rel=1e-9)


def test_haversine_broadcasts_scalars_series_and_grids():
    lats = pd.Series([36.12, 33.94, 36.12])
    lons = pd.Series([-86.67, -118.40, -86.67])
    out = haversine_km(lats, lons, *LAX)
    assert isinstance(out, np.ndarray)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, [BNA_TO_LAX_KM, 0.0, BNA_TO_LAX_KM], atol=1e-6)

    # points (3, 1) against restaurants (4,): a (3, 4) distance matrix, each cell the scalar answer.
    p_lat, p_lon = np.array([[50.40], [50.45], [50.50]]), np.array([[-104.6], [-104.65], [-104.55]])
    r_lat, r_lon = (
        np.array([50.41, 50.42, 50.43, 50.44]),
        np.array([-104.61, -104.62, -104.5, -104.7]),
    )
    grid = haversine_km(p_lat, p_lon, r_lat, r_lon)
    assert grid.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert grid[i, j] == pytest.approx(
                haversine_km(p_lat[i, 0], p_lon[i, 0], r_lat[j], r_lon[j]), rel=1e-12
            )


def test_euclidean_deg():
    assert euclidean_deg(0.0, 0.0, 3.0, 4.0) == pytest.approx(5.0)
    assert euclidean_deg(3.0, 4.0, 0.0, 0.0) == pytest.approx(5.0)
    assert euclidean_deg(50.4, -104.6, 50.4, -104.6) == 0.0
    out = euclidean_deg(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([[3.0], [0.0]]), 5.0)
    # (2,) against (2, 1): rows are the second point's lat (3 then 0), columns the first points.
    np.testing.assert_allclose(out, [[math.hypot(3, 5), math.hypot(2, 4)], [5.0, math.hypot(1, 4)]])


def test_venue_id_is_stable_across_calls_and_runs():
    lat = pd.Series([50.45, 50.40, 50.45])
    lon = pd.Series([-104.6, -104.7, -104.6])
    first, second = venue_id(lat, lon), venue_id(lat.copy(), lon.copy())
    pd.testing.assert_series_equal(first, second)
    assert first.iloc[0] == first.iloc[2]
    assert first.iloc[0] != first.iloc[1]
    # A literal value: an id that depended on a salted hash or process state would not match.
    # (50.45 + 90) * 1e5 = 14_045_000 lat units, (-104.6 + 180) * 1e5 = 7_540_000 lon units,
    # packed as lat_units * (360 * 1e5 + 1) + lon_units.
    assert int(first.iloc[0]) == 14_045_000 * 36_000_001 + 7_540_000
    # Float noise far below the 1e-5 degree grid does not change the id.
    assert venue_id(pd.Series([50.45 + 1e-9]), pd.Series([-104.6 - 1e-9])).iloc[0] == first.iloc[0]


def test_venue_id_distinguishes_points_two_metres_apart():
    metres_per_degree = 111_320.0
    lat0, lon0 = 50.4512345, -104.6054321
    north = lat0 + 2 / metres_per_degree
    east = lon0 + 2 / (metres_per_degree * math.cos(math.radians(lat0)))
    assert haversine_km(lat0, lon0, north, lon0) * 1000 == pytest.approx(2.0, abs=0.05)
    assert haversine_km(lat0, lon0, lat0, east) * 1000 == pytest.approx(2.0, abs=0.05)
    ids = venue_id(pd.Series([lat0, north, lat0]), pd.Series([lon0, lon0, east]))
    assert ids.nunique() == 3
    # lat and lon are not interchangeable
    swapped = venue_id(pd.Series([10.0, 20.0]), pd.Series([20.0, 10.0]))
    assert swapped.iloc[0] != swapped.iloc[1]


def test_venue_id_is_the_packing_formula_and_leaves_its_input_alone():
    """Worked in place on its own two arrays (issue #25 item 2): the formula's bits, and the
    caller's coordinates unchanged."""
    rng = np.random.default_rng(4)
    lat = pd.Series(rng.uniform(-90, 90, 500)).round(rng.integers(0, 9))
    lon = pd.Series(rng.uniform(-180, 180, 500))
    lat[::7], lon[::11] = np.nan, np.nan
    lat[1], lon[2], lat[3], lon[3] = 90.0, -180.0, 50.123455, -104.600005  # edges, half units
    before = lat.copy(), lon.copy()
    lat_units = np.round((lat.to_numpy() + 90.0) * 100_000)
    lon_units = np.round((lon.to_numpy() + 180.0) * 100_000)
    packed = lat_units * (360 * 100_000 + 1) + lon_units
    ids = venue_id(lat, lon)
    assert ids.isna().tolist() == np.isnan(packed).tolist()
    np.testing.assert_array_equal(
        ids.to_numpy(dtype=np.int64, na_value=0),
        np.where(np.isnan(packed), 0, packed).astype(np.int64),
    )
    pd.testing.assert_series_equal(lat, before[0])
    pd.testing.assert_series_equal(lon, before[1])


def test_venue_id_is_null_where_a_coordinate_is_null_and_keeps_the_index():
    lat = pd.Series([50.45, np.nan, 50.45, np.nan], index=[10, 11, 12, 13])
    lon = pd.Series([-104.6, -104.6, np.nan, np.nan], index=[10, 11, 12, 13])
    ids = venue_id(lat, lon)
    assert ids.dtype == pd.Int64Dtype()
    assert ids.name == "restaurant_id"
    assert list(ids.index) == [10, 11, 12, 13]
    assert ids.isna().tolist() == [False, True, True, True]
    assert ids.iloc[0] == venue_id(pd.Series([50.45]), pd.Series([-104.6])).iloc[0]


# ---------- H3 helpers ----------
REGINA_POINTS = (
    np.array([50.40, 50.4479, 50.45, 50.52, -33.87, 0.0]),
    np.array([-104.70, -104.6177, -104.60, -104.50, 151.21, 0.0]),
)


def test_h3_cells_match_h3_point_by_point():
    lat, lon = REGINA_POINTS
    cells = h3_cells(lat, lon, 7)
    assert cells.dtype == np.uint64
    expected = [h3.str_to_int(h3.latlng_to_cell(a, b, 7)) for a, b in zip(lat, lon, strict=True)]
    np.testing.assert_array_equal(cells, np.array(expected, dtype=np.uint64))
    assert h3_cells([], [], 7).shape == (0,)


def test_h3_cells_in_threaded_blocks_match_one_block(monkeypatch):
    rng = np.random.default_rng(3)
    lat, lon = 50.45 + rng.normal(0, 0.05, 10_001), -104.6 + rng.normal(0, 0.05, 10_001)
    whole = h3_cells(lat, lon, 8)  # 10k points: one block
    monkeypatch.setattr(geo, "_H3_BLOCK", 1_000)
    monkeypatch.setattr(geo, "_usable_cpus", lambda: 3)  # three uneven blocks, three threads
    np.testing.assert_array_equal(h3_cells(pd.Series(lat), pd.Series(lon), 8), whole)
    with pytest.raises(ValueError, match="latitude"):  # a worker's error reaches the caller
        h3_cells(np.append(lat, np.nan), np.append(lon, 0.0), 8)


def test_cell_centres_fall_in_their_own_cells():
    cells = h3_cells(*REGINA_POINTS, 7)
    lat, lon = cell_centres(cells)
    np.testing.assert_array_equal(h3_cells(lat, lon, 7), cells)
    assert haversine_km(lat, lon, *REGINA_POINTS).max() < 3.0  # a res-7 cell is ~1.2 km across


def test_cell_names_round_trip_and_keep_shape():
    cells = h3_cells(*REGINA_POINTS, 7)
    names = cell_names(cells)
    assert all(isinstance(name, str) and len(name) == 15 for name in names)
    np.testing.assert_array_equal(cell_ids(names), cells)


def test_cell_neighbours_are_the_six_adjacent_cells_and_symmetric():
    cells = h3_cells(*REGINA_POINTS, 7)[:3]
    pairs = cell_neighbours(np.concatenate([cells, cells]))  # duplicates are looked up once
    assert pairs.groupby("cell").size().tolist() == [6] * len(np.unique(cells))
    assert not (pairs["cell"] == pairs["neighbour"]).any()
    back = cell_neighbours(pairs["neighbour"].unique())
    merged = pairs.merge(back, left_on=["cell", "neighbour"], right_on=["neighbour", "cell"])
    assert len(merged) == len(pairs)
    centre_lat, centre_lon = cell_centres(pairs["cell"].to_numpy())
    nb_lat, nb_lon = cell_centres(pairs["neighbour"].to_numpy())
    distance = haversine_km(centre_lat, centre_lon, nb_lat, nb_lon)
    assert distance.max() < 3.0 and distance.min() > 1.5  # adjacent res-7 centres ~2.3 km apart


@pytest.mark.parametrize("distance", [haversine_km, euclidean_deg], ids=["haversine", "euclidean"])
def test_distances_in_blocks_are_the_same_bits_as_in_one_pass(distance, monkeypatch):
    """Long arrays are computed in blocks (issue #25: fewer fresh pages); blocks of 7 rows
    must give the bits of one pass, NaN, broadcast scalars and a last short block included."""
    rng = np.random.default_rng(11)
    lat, lon = rng.uniform(-90, 90, 100), rng.uniform(-180, 180, 100)
    venue_lat = np.where(rng.random(100) < 0.1, np.nan, rng.uniform(-90, 90, 100))
    venue_lon = pd.Series(rng.uniform(-180, 180, 100))
    whole = [
        distance(lat, lon, venue_lat, venue_lon),
        distance(lat, lon, 50.45, -104.6),
        distance(50.45, -104.6, venue_lat, venue_lon),
    ]
    monkeypatch.setattr(geo, "_DISTANCE_BLOCK", 7)
    blocks = [
        distance(lat, lon, venue_lat, venue_lon),
        distance(lat, lon, 50.45, -104.6),
        distance(50.45, -104.6, venue_lat, venue_lon),
    ]
    for one_pass, in_blocks in zip(whole, blocks, strict=True):
        assert in_blocks.shape == one_pass.shape == (100,)
        np.testing.assert_array_equal(in_blocks.view(np.int64), one_pass.view(np.int64))
    assert np.isnan(blocks[0]).sum() == np.isnan(venue_lat).sum()
