"""The clean events summarised in Spark, vectorised: Arrow record batches through h3ronpy
(``mapInArrow``), never a Python call per row. One pass gives both what feature_engineering
reads of the events:

- events per (H3 cell, hour) of every event, counted per batch by ``model.cell_hours.count_pairs``;
- ``model.event_summary.cell_venue_partials`` of all events and of the events in the train window
  (per cell and restaurant: distance sums, events, the first located row), the pandas fit's
  own function.

Both are partial per batch; Spark adds them up by key (the partials as ``model.event_summary`` says:
``PARTIAL_SUMS`` summed, ``AT_FIRST_ROW`` at the smallest ``FIRST_ROW``), and only that small
table goes back to the driver. Cells come from ``model.geo.h3_cells``, as on pandas.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from geo_busyness.model.cell_hours import hours_array
from geo_busyness.model.event_summary import (
    AT_FIRST_ROW,
    FIRST_ROW,
    NO_ROW,
    NO_VENUE,
    PARTIAL_SUMS,
)
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    HOUR,
    SOURCE_ROW,
    TARGET,
    VENUE_ID,
    VENUE_LAT,
    VENUE_LON,
)
from geo_busyness.spark.rows import with_row_numbers

#: Kinds of summary rows: a cell-hour count (key: the hour in µs), or a cell-restaurant partial
#: (key: the restaurant id, ``NO_VENUE`` for events without one) of all events or of the
#: window's.
COUNT, PARTIAL, WINDOW_PARTIAL = 0, 1, 2
KIND, KEY, HOUR_US = "_kind", "_key", "_hour_us"
#: H3 cells are uint64 with the top bit always 0, so they fit Spark's signed 64-bit LongType.
_SCHEMA = ", ".join(
    [
        f"{KIND} int",
        f"{CELL} long",
        f"{KEY} long",
        *(f"{name} long" for name in PARTIAL_SUMS),
        f"{FIRST_ROW} long",
        *(f"{name} double" for name in AT_FIRST_ROW),
    ]
)
#: Columns the batches read.
_INPUTS = (EVENT_LAT, EVENT_LON, HOUR_US, VENUE_LAT, VENUE_LON, VENUE_ID, SOURCE_ROW)


class _SummaryBatches:
    """Picklable ``mapInArrow`` function: event batches -> their cell-hour counts, their
    cell-restaurant partials, and those of the events whose hour (µs) is in [start, end)."""

    def __init__(self, resolution: int, start_us: int, end_us: int) -> None:
        self.resolution, self.start_us, self.end_us = int(resolution), int(start_us), int(end_us)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from geo_busyness.model.cell_hours import count_pairs  # noqa: PLC0415 - executors
        from geo_busyness.model.geo import h3_cells  # noqa: PLC0415

        for batch in batches:
            columns = {name: _numpy(batch.column(name)) for name in _INPUTS}
            cells = h3_cells(columns[EVENT_LAT], columns[EVENT_LON], self.resolution)
            hour_us = columns[HOUR_US]
            cell, hours_ns, counts = count_pairs(cells, hour_us * 1000)
            yield _rows(COUNT, cell, hours_ns // 1000, {PARTIAL_SUMS[0]: counts})
            inside = (hour_us >= self.start_us) & (hour_us < self.end_us)
            yield _partial_rows(PARTIAL, columns, cells)
            if inside.any():
                window = {name: values[inside] for name, values in columns.items()}
                yield _partial_rows(WINDOW_PARTIAL, window, cells[inside])


def _partial_rows(kind: int, columns: dict[str, np.ndarray], cells: np.ndarray) -> pa.RecordBatch:
    """The ``cell_venue_partials`` of one batch's events (rows: ``SOURCE_ROW``) as summary rows."""
    from geo_busyness.model.event_summary import cell_venue_partials  # noqa: PLC0415 - executors

    partials = cell_venue_partials(pd.DataFrame(columns), cells, columns[SOURCE_ROW])
    values = {name: partials[name].to_numpy() for name in (*PARTIAL_SUMS, FIRST_ROW)}
    values |= {name: partials[name].to_numpy() for name in AT_FIRST_ROW}
    return _rows(kind, partials[CELL].to_numpy(), partials[VENUE_ID].to_numpy(), values)


def _numpy(column: pa.Array) -> np.ndarray:
    """An Arrow column as numpy: restaurant ids with ``NO_VENUE`` for null, doubles with NaN."""
    if pa.types.is_integer(column.type):
        return pc.fill_null(column, NO_VENUE).to_numpy()
    return column.to_numpy(zero_copy_only=False)


def _rows(kind: int, cells: np.ndarray, keys: np.ndarray, values: dict) -> pa.RecordBatch:
    """One summary batch: ``values`` by column name; absent sums 0, no first row, no coordinates."""
    n = len(cells)
    arrays = [
        pa.array(np.full(n, kind, np.int32)),
        pa.array(np.asarray(cells, np.uint64).view(np.int64)),
        pa.array(np.asarray(keys, np.int64)),
        *(pa.array(np.asarray(values.get(name, np.zeros(n)), np.int64)) for name in PARTIAL_SUMS),
        pa.array(np.asarray(values.get(FIRST_ROW, np.full(n, NO_ROW)), np.int64)),
        *(
            pa.array(np.asarray(values.get(name, np.full(n, np.nan)), float))
            for name in AT_FIRST_ROW
        ),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=_arrow_schema())


def _arrow_schema() -> pa.Schema:
    """The Arrow schema of ``_SCHEMA``."""
    longs = [CELL, KEY, *PARTIAL_SUMS, FIRST_ROW]
    return pa.schema(
        [(KIND, pa.int32()), *((name, pa.int64()) for name in longs)]
        + [(name, pa.float64()) for name in AT_FIRST_ROW]
    )


def summarise_events(
    events: DataFrame, resolution: int, window_us: tuple[int, int]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """From one Spark job over the clean events: every event's counts per (H3 cell, UTC hour)
    (``model.cell_hours.count_cell_hours``' columns and order), the merged
    ``cell_venue_partials`` of all events, and those of the events whose hour (µs since the
    epoch) is in ``window_us``."""
    batches = events.select(
        EVENT_LAT,
        EVENT_LON,
        F.unix_micros(F.date_trunc("hour", F.col(EVENT_TIME))).alias(HOUR_US),
        VENUE_LAT,
        VENUE_LON,
        VENUE_ID,
        SOURCE_ROW,
    ).mapInArrow(_SummaryBatches(resolution, *window_us), _SCHEMA)
    merged = (
        batches.groupBy(KIND, CELL, KEY)
        .agg(
            *(F.sum(name).alias(name) for name in PARTIAL_SUMS),
            F.min(FIRST_ROW).alias(FIRST_ROW),
            *(F.min_by(name, FIRST_ROW).alias(name) for name in AT_FIRST_ROW),
        )
        .toPandas()
    )
    kind = merged[KIND].to_numpy()
    return (
        _counts(merged[kind == COUNT]),
        _partials(merged[kind == PARTIAL]),
        _partials(merged[kind == WINDOW_PARTIAL]),
    )


def _counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Summary rows of kind ``COUNT`` as ``count_cell_hours`` gives them (by cell, then hour)."""
    cells = rows[CELL].to_numpy(dtype=np.int64).view(np.uint64)
    hours_ns = rows[KEY].to_numpy(dtype=np.int64) * 1000
    order = np.lexsort((hours_ns, cells))
    return pd.DataFrame(
        {
            CELL: cells[order],
            HOUR: hours_array(hours_ns[order]),
            TARGET: rows[PARTIAL_SUMS[0]].to_numpy(dtype=np.int64)[order],
        }
    )


def _partials(rows: pd.DataFrame) -> pd.DataFrame:
    """Summary rows of kind ``PARTIAL`` as merged ``cell_venue_partials``."""
    return pd.DataFrame(
        {
            CELL: rows[CELL].to_numpy(dtype=np.int64).view(np.uint64),
            VENUE_ID: rows[KEY].to_numpy(dtype=np.int64),
            **{name: rows[name].to_numpy(dtype=np.int64) for name in (*PARTIAL_SUMS, FIRST_ROW)},
            **{name: rows[name].to_numpy(dtype=float) for name in AT_FIRST_ROW},
        }
    )


def sample_event_points(events: DataFrame, positions: np.ndarray | None) -> np.ndarray:
    """Event locations (lat, lon) at ``positions`` of the events sorted by lat, lon
    (``model.event_summary.anchor_positions``; None: all of them): the anchors of a source without
    restaurants. Sorted by Spark (range-partitioned) and numbered in that order."""
    points = events.select(EVENT_LAT, EVENT_LON)
    if positions is None:
        picked = points.toPandas()
    else:
        ordered = points.orderBy(EVENT_LAT, EVENT_LON).persist()
        numbered = with_row_numbers(ordered, "_position")
        picked = numbered.where(F.col("_position").isin(positions.tolist())).toPandas()
        ordered.unpersist()
    return picked[[EVENT_LAT, EVENT_LON]].to_numpy(dtype=float)
