"""Geo maths of the model and the pipelines: distances, stable ids and H3 cells (vectorised)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import h3
import numpy as np
import pandas as pd
from h3ronpy import vector

from geo_busyness.schemas import CELL, LAT_LIMIT, LON_LIMIT, VENUE_ID

#: Earth radius used by the reference notebook's Haversine distance, in km.
EARTH_RADIUS_KM = 6372.8

# A venue id packs its coordinates rounded to 1e-5 degrees (about 1 m) into one int64:
# exact, reversible and the same on every run, unlike a salted hash.
_ID_SCALE = 100_000
_LON_SPAN = int(2 * LON_LIMIT) * _ID_SCALE + 1
#: Column of ``cell_neighbours`` beside ``CELL``.
NEIGHBOUR = "neighbour"


#: Rows per block of ``haversine_km`` and ``euclidean_deg`` on long arrays: the temporaries
#: of a block stay in the cache and their memory is reused, where whole-column temporaries
#: are each 80 MB of fresh pages at 10M events (the page faults cost more than the maths).
_DISTANCE_BLOCK = 1 << 16


def _in_blocks(formula, *coordinates) -> np.ndarray:
    """``formula(*coordinates)`` (element-wise, float arrays broadcast together), computed
    block by block into one output when the arrays are long: the same bits, less memory."""
    arrays = [np.asarray(a, dtype=float) for a in coordinates]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    if len(shape) != 1 or shape[0] <= _DISTANCE_BLOCK:
        return formula(*arrays)
    arrays = np.broadcast_arrays(*arrays)
    result = np.empty(shape)
    for start in range(0, shape[0], _DISTANCE_BLOCK):
        block = slice(start, start + _DISTANCE_BLOCK)
        result[block] = formula(*(a[block] for a in arrays))
    return result


def _haversine(lat1, lon1, lat2, lon2) -> np.ndarray:
    lat1, lon1, lat2, lon2 = (np.radians(a) for a in (lat1, lon1, lat2, lon2))
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _euclidean(lat1, lon1, lat2, lon2) -> np.ndarray:
    return np.hypot(lat2 - lat1, lon2 - lon1)


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (array-like, broadcast)."""
    return _in_blocks(_haversine, lat1, lon1, lat2, lon2)


def euclidean_deg(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Straight-line distance in degrees, as the reference notebook's ``dist_to_restaurant``."""
    return _in_blocks(_euclidean, lat1, lon1, lat2, lon2)


def venue_id(lat: pd.Series, lon: pd.Series) -> pd.Series:
    """Stable int64 id of a venue from its coordinates; null where either coordinate is null."""
    # Two new float arrays worked on in place (the same bits as the plain expressions): at 10M
    # events every temporary is 80 MB, and this runs while the clean table is being built.
    packed = np.add(lat.to_numpy(dtype=float), LAT_LIMIT)
    packed *= _ID_SCALE
    np.round(packed, out=packed)
    packed *= _LON_SPAN
    lon_units = np.add(lon.to_numpy(dtype=float), LON_LIMIT)
    lon_units *= _ID_SCALE
    packed += np.round(lon_units, out=lon_units)
    del lon_units
    missing = np.isnan(packed)
    packed[missing] = 0
    ids = packed.astype(np.int64)
    return pd.Series(pd.arrays.IntegerArray(ids, missing), index=lat.index, name=VENUE_ID)


# ---------- H3 cells (vectorised through h3ronpy; loops only ever run over unique cells) ----------


#: Points per thread below which ``h3_cells`` indexes in the calling thread alone.
_H3_BLOCK = 500_000


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def h3_cells(lat, lon, resolution: int) -> np.ndarray:
    """H3 cell of each point as a uint64 array (lat/lon in degrees, array-like).

    Millions of points are split into one block per usable CPU, indexed in threads: h3ronpy
    releases the GIL, so two cores index 10M points in about half the time.
    """
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    workers = min(_usable_cpus(), lat.size // _H3_BLOCK)
    if workers <= 1:
        return np.asarray(vector.coordinates_to_cells(lat, lon, int(resolution)), dtype=np.uint64)
    cells = np.empty(lat.size, dtype=np.uint64)

    def index_block(block: slice) -> None:
        block_cells = vector.coordinates_to_cells(lat[block], lon[block], int(resolution))
        cells[block] = np.asarray(block_cells)  # zero-copy view; assigning Arrow is slower

    edges = np.linspace(0, lat.size, workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(index_block, map(slice, edges[:-1], edges[1:])))  # list: raise errors
    return cells


def cell_centres(cells) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees) of the centre of each H3 cell (uint64 array-like)."""
    cells = np.ascontiguousarray(cells, dtype=np.uint64)
    if cells.size == 0:
        return np.empty(0), np.empty(0)
    centres = vector.cells_to_coordinates(cells)
    return np.asarray(centres.column("lat")), np.asarray(centres.column("lng"))


def cell_names(cells) -> np.ndarray:
    """The usual hexadecimal names ('8727a0335ffffff') of H3 cells, as an object array."""
    cells = np.asarray(cells, dtype=np.uint64)
    unique, inverse = np.unique(cells, return_inverse=True)
    names = np.array([h3.int_to_str(int(cell)) for cell in unique], dtype=object)
    return names[inverse.reshape(cells.shape)]


def cell_ids(names) -> np.ndarray:
    """Inverse of ``cell_names``: uint64 cells from their hexadecimal names."""
    names = np.asarray(names, dtype=object)
    unique, inverse = np.unique(names, return_inverse=True)
    ids = np.array([h3.str_to_int(str(name)) for name in unique], dtype=np.uint64)
    return ids[inverse.reshape(names.shape)]


def cell_neighbours(cells) -> pd.DataFrame:
    """Pairs (``CELL``, ``NEIGHBOUR``) of each distinct cell with its k-ring-1 neighbours (not itself)."""
    pairs = [
        (int(cell), h3.str_to_int(ring_cell))
        for cell in np.unique(np.asarray(cells, dtype=np.uint64))
        for ring_cell in h3.grid_ring(h3.int_to_str(int(cell)), 1)
    ]
    frame = pd.DataFrame(pairs, columns=[CELL, NEIGHBOUR])
    return frame.astype({CELL: np.uint64, NEIGHBOUR: np.uint64})
