"""The served answers of every known cell in every hour of the week after the model's origin,
computed once per model, so that a request becomes: parse, H3-index, look up, encode.

A forecast for a (cell, hour) depends only on the model's state (its known counts end at the
origin), so between refreshes the answers for every cell the model knows x the
``TABLE_HOURS`` hours from its origin are fixed. ``serve(model)`` computes them through the
model's own prediction path (``predict_cell_hours``, the numbers ``predict_busyness`` gives) and
returns them with the model as one ``Served`` object: the server swaps that one reference when
the model or its counts change, so a request is answered wholly by the old state or the new.

Queries the table does not hold (cells the model does not know, hours before its origin or a
week or more after it) are answered by the model, exactly as before; ``answer`` mixes the two
row by row, each row getting the same numbers either way (the exactness test compares every
cell x hour of the table with ``predict_busyness``). A small request is indexed point by point
(``point_cells``: the model's own cells, without h3ronpy's per-call cost), looked up and
encoded without pandas (``quick_answer``).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
import orjson
import pandas as pd
from h3.api import basic_int

from geo_busyness.model.cell_hours import HOUR_NS, HOURS_PER_WEEK, hours_array, utc_hour_ns
from geo_busyness.model.counts_state import CountsState
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.geo import cell_centres, h3_cells, haversine_km
from geo_busyness.model.predict import cell_hour_grid, predict_busyness, predict_cell_hours
from geo_busyness.model.queries import known_cells
from geo_busyness.schemas import (
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    PREDICTION,
)
from geo_busyness.serving.requests import RequestError, json_request, plain_rows
from geo_busyness.serving.responses import ANSWER_COLUMNS, iso_hours

logger = logging.getLogger(__name__)

#: Hours from the model's origin that the table holds: the week-ahead product's horizons.
TABLE_HOURS = HOURS_PER_WEEK
#: Rows per prediction call while building (bounds the feature matrix's memory).
BUILD_ROWS_PER_CALL = 100_000
#: The answer's number columns, in the table's last axis.
VALUE_COLUMNS = (PREDICTION, *INTERVAL_COLUMNS)
#: Half the side (degrees) of the square around a point whose four corners must lie in the
#: point's own cell for ``point_cells`` to index it through h3-py: h3-py and h3ronpy were seen
#: to disagree only within ~1e-10 degrees of a cell's edge (tests/serving/test_lookup.py).
EDGE_MARGIN_DEG = 1e-6


@dataclass(frozen=True, eq=False)
class LookupTable:
    """Answers of ``cells`` x the ``hours`` UTC hours from ``first_ns``, as the model gives them."""

    resolution: int
    first_ns: int  # the first hour held (the model's origin, UTC int64 ns)
    cells: np.ndarray  # sorted uint64 H3 cells
    names: np.ndarray  # their hexadecimal names (object)
    values: np.ndarray  # cells x hours x VALUE_COLUMNS, float64
    horizons: np.ndarray  # cells x hours, int64
    hour_names: tuple[str, ...]  # each hour as the answer writes it
    rows: dict[int, int]  # cell -> row, for the small-request path
    radius_km: float  # farthest point of any held cell from its centre

    @property
    def hours(self) -> int:
        """Number of hours held."""
        return int(self.values.shape[1])

    def covers_area_check(self, max_distance_km: float | None) -> bool:
        """Whether no point of a held cell can fail the known-area check at
        ``max_distance_km``: the check is off, or the distance is above every held cell's
        radius (with a margin for rounding). Then a held cell needs no distance computed."""
        if not max_distance_km or max_distance_km <= 0:
            return True
        return max_distance_km > self.radius_km * 1.01 + 1e-6

    def find(self, cells: np.ndarray, hours_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat position in the table of each (uint64 cell, UTC hour in int64 ns) pair, and
        whether the table holds it."""
        row = np.searchsorted(self.cells, cells).clip(0, len(self.cells) - 1)
        col = (np.asarray(hours_ns, dtype=np.int64) - self.first_ns) // HOUR_NS
        held = (self.cells[row] == cells) & (col >= 0) & (col < self.hours)
        return np.where(held, row * self.hours + col, 0), held

    def holds_all(self, queries: pd.DataFrame) -> bool:
        """Whether the table holds every query row (typed rows, as parsed)."""
        cells = h3_cells(queries[EVENT_LAT], queries[EVENT_LON], self.resolution)
        return bool(self.find(cells, utc_hour_ns(queries[EVENT_TIME]))[1].all())

    def answer(self, model: Any, queries: pd.DataFrame) -> pd.DataFrame:
        """``predict_busyness(model, queries)``: rows the table holds from the table, the
        others from the model."""
        cells = h3_cells(queries[EVENT_LAT], queries[EVENT_LON], self.resolution)
        hours = utc_hour_ns(queries[EVENT_TIME])
        flat, held = self.find(cells, hours)
        if not held.any():
            return predict_busyness(model, queries)
        values = self.values.reshape(-1, len(VALUE_COLUMNS))[flat]
        columns: dict[str, Any] = {
            H3_CELL: self.names[flat // self.hours],
            HOUR: hours_array(hours),
            **{name: values[:, j] for j, name in enumerate(VALUE_COLUMNS)},
            HORIZON: self.horizons.reshape(-1)[flat],
        }
        if not held.all():
            missed = ~held
            others = predict_busyness(model, queries[missed])
            for name in (H3_CELL, *VALUE_COLUMNS, HORIZON):
                columns[name][missed] = others[name].to_numpy()
        return pd.DataFrame(columns, index=queries.index)

    def quick_answer(self, body: bytes) -> bytes | None:
        """The JSON answer body of a small, plainly valid JSON request (``plain_rows``) whose
        every row the table holds; None for any other request (the general path answers it,
        with its own errors)."""
        try:
            document, explain = json_request(body)
        except RequestError:
            return None
        plain = None if explain else plain_rows(document)
        if plain is None:
            return None
        records = []
        cells = point_cells(plain.lat, plain.lon, self.resolution)
        for cell, micros in zip(cells, plain.micros, strict=True):  # at most 8 rows
            row = self.rows.get(cell)
            ns = micros * 1000
            col = (ns - ns % HOUR_NS - self.first_ns) // HOUR_NS
            if row is None or not 0 <= col < self.hours:
                return None
            answer = (
                self.names[row],
                self.hour_names[col],
                *self.values[row, col].tolist(),
                self.horizons[row, col].item(),
            )
            records.append(dict(zip(ANSWER_COLUMNS, answer, strict=True)))
        return orjson.dumps({"predictions": records})


def point_cells(lat: list[float], lon: list[float], resolution: int) -> list[int]:
    """The model's H3 cell (``h3_cells``) of each point of a small request, for a fraction of
    its per-call cost.

    ``h3_cells`` goes through h3ronpy (Arrow arrays: ~20 us a call however few the points);
    h3-py's C library indexes a point in well under a microsecond, but the two implementations
    disagree for points within ~1e-10 degrees of a cell's edge. A point whose square of
    half-side ``EDGE_MARGIN_DEG`` has its four corners in the point's own cell lies inside that
    (convex) cell at least 10,000 times farther from every edge, where both give the same cell;
    if any point is not (or h3-py refuses a corner, past a pole), ``h3_cells`` indexes them all.
    """
    try:
        cells = [_inner_cell(a, b, resolution) for a, b in zip(lat, lon, strict=True)]
    except h3.H3BaseException:
        return h3_cells(lat, lon, resolution).tolist()
    if None in cells:
        return h3_cells(lat, lon, resolution).tolist()
    return cells


def _inner_cell(lat: float, lon: float, resolution: int) -> int | None:
    """h3-py's cell of a point when the corners of its ``EDGE_MARGIN_DEG`` square share it."""
    cell = basic_int.latlng_to_cell(lat, lon, resolution)
    margin = EDGE_MARGIN_DEG
    for corner_lat in (lat - margin, lat + margin):
        for corner_lon in (lon - margin, lon + margin):
            if basic_int.latlng_to_cell(corner_lat, corner_lon, resolution) != cell:
                return None
    return cell


@dataclass(frozen=True, eq=False)
class Served:
    """What answers invocations, replaced as one reference: the model, its lookup table (None:
    the model answers every query), its known cells (the known-area check), the model as
    loaded before any counts state (``base``: what a newer state is applied to), its version
    label and the counts state applied (None: the artifact's own counts)."""

    model: Any
    table: LookupTable | None = None
    cells: np.ndarray | None = None
    base: Any = None
    version: str | None = None
    state: CountsState | None = None

    @property
    def loaded(self) -> Any:
        """The model before counts were applied (``model`` itself when none were)."""
        return self.model if self.base is None else self.base

    @functools.cached_property
    def counts_end(self) -> pd.Timestamp | None:
        """The hour after the last count the served model knows (its origin; None for a model
        without one)."""
        origin = getattr(self.model, "origin", None)
        return origin if isinstance(origin, pd.Timestamp) else None

    @functools.cached_property
    def counts_end_seconds(self) -> float | None:
        """``counts_end`` in Unix seconds (ages are computed from it per answer)."""
        return None if self.counts_end is None else self.counts_end.timestamp()

    @functools.cached_property
    def fixed_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """``X-Model-Version`` and ``X-Counts-End`` of its answers (those known), once."""
        headers = []
        if self.version is not None:
            headers.append((b"x-model-version", str(self.version).encode()))
        if self.counts_end is not None:
            headers.append((b"x-counts-end", self.counts_end.isoformat().encode()))
        return tuple(headers)


def serve(
    model: Any, *, base: Any = None, version: str | None = None, state: CountsState | None = None
) -> Served:
    """The model with its lookup table, built by the model's own prediction path; ``base``,
    ``version`` and ``state`` are carried along (see ``Served``).

    Only the forecaster artifact itself gets a table (a wrapper is left to answer through
    ``predict_busyness``). A table that cannot be built is logged and left out: the model then
    answers every query, as it did before tables existed.
    """
    cells = known_cells(model)
    carried = {"base": base, "version": version, "state": state}
    if not isinstance(model, BusynessForecaster) or cells is None:
        return Served(model, None, cells, **carried)
    started = time.perf_counter()
    try:
        table = build_table(model)
    except Exception as exc:  # noqa: BLE001 - the model still answers every query
        logger.warning(
            "No lookup table (%s: %s): the model answers every query", type(exc).__name__, exc
        )
        return Served(model, None, cells, **carried)
    logger.info(
        "Lookup table of %d cells x %d hours from %s built in %.2f s",
        len(table.cells),
        table.hours,
        table.hour_names[0],
        time.perf_counter() - started,
    )
    return Served(model, table, cells, **carried)


def build_table(model: BusynessForecaster, hours: int = TABLE_HOURS) -> LookupTable:
    """Every known cell x ``hours`` hours from the model's origin through
    ``predict_cell_hours`` (a few hour blocks per call, each pair answered on its own)."""
    cells = np.unique(np.asarray(known_cells(model), dtype=np.uint64))
    origin_ns = int(model.origin.value)
    first = pd.Timestamp(origin_ns - origin_ns % HOUR_NS, tz="UTC")
    grid_hours = pd.date_range(first, periods=hours, freq="h")
    step = max(1, BUILD_ROWS_PER_CALL // len(cells))
    parts = [
        predict_cell_hours(model, *cell_hour_grid(cells, grid_hours[start : start + step]))
        for start in range(0, hours, step)  # a loop over hour blocks, not rows
    ]
    answers = pd.concat(parts, ignore_index=True)

    def by_cell(name: str) -> np.ndarray:  # grid order is hour by hour: hours x cells
        return answers[name].to_numpy().reshape(hours, len(cells)).T

    names = by_cell(H3_CELL)[:, 0].astype(object)
    return LookupTable(
        resolution=model.resolution,
        first_ns=int(first.value),
        cells=cells,
        names=names,
        values=np.stack([by_cell(name).astype(float) for name in VALUE_COLUMNS], axis=-1),
        horizons=np.ascontiguousarray(by_cell(HORIZON).astype(np.int64)),
        hour_names=tuple(iso_hours(pd.Series(grid_hours))),
        rows={int(cell): row for row, cell in enumerate(cells.tolist())},
        radius_km=cell_radius_km(cells),
    )


def cell_radius_km(cells: np.ndarray) -> float:
    """The largest distance (km) from a cell's centre to one of its boundary vertices: no
    point of these cells is farther from its own cell's centre (edges are great-circle arcs)."""
    if not len(cells):
        return 0.0
    centre_lat, centre_lon = cell_centres(cells)
    vertices = [h3.cell_to_boundary(h3.int_to_str(int(cell))) for cell in cells]  # per cell
    counts = [len(points) for points in vertices]
    flat = np.asarray([point for points in vertices for point in points], dtype=float)
    distance = haversine_km(
        np.repeat(centre_lat, counts), np.repeat(centre_lon, counts), flat[:, 0], flat[:, 1]
    )
    return float(distance.max())
