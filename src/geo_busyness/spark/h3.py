"""Events per (H3 cell, hour) in Spark, vectorised: Arrow record batches through h3ronpy
(``mapInArrow``), never a Python call per row. Each batch is indexed by ``model.geo.h3_cells``
and counted by ``model.cell_hours.count_pairs``, the functions the pandas path uses, so both
engines give the same cells and counts; only partial counts go back to the JVM.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

#: H3 cells are uint64 with the top bit always 0, so they fit Spark's signed 64-bit LongType.
CELL_TYPE = "long"


class _CountBatches:
    """Picklable ``mapInArrow`` function: (lat, lon, hour in µs) batches -> events per (cell,
    hour) of each batch."""

    def __init__(self, *, lat: str, lon: str, hour_us: str, cell: str, count: str, resolution: int):
        self.lat, self.lon, self.hour_us, self.cell, self.count = lat, lon, hour_us, cell, count
        self.resolution = int(resolution)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from geo_busyness.model.cell_hours import count_pairs  # noqa: PLC0415 - executors
        from geo_busyness.model.geo import h3_cells  # noqa: PLC0415

        for batch in batches:
            lat = batch.column(self.lat).to_numpy(zero_copy_only=False)
            lon = batch.column(self.lon).to_numpy(zero_copy_only=False)
            hours_ns = batch.column(self.hour_us).to_numpy(zero_copy_only=False) * 1000
            cells, hours, counts = count_pairs(h3_cells(lat, lon, self.resolution), hours_ns)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(cells.view(np.int64), pa.int64()),
                    pa.array(hours // 1000, pa.int64()),
                    pa.array(counts, pa.int64()),
                ],
                names=[self.cell, self.hour_us, self.count],
            )


def count_cells_and_hours(
    frame: DataFrame, *, lat: str, lon: str, hour_us: str, resolution: int, cell: str, count: str
) -> DataFrame:
    """Events per (H3 cell, hour) of ``frame`` (valid points and their hour in µs since the
    epoch): counted per Arrow batch on the executors, then summed by Spark."""
    schema = f"{cell} {CELL_TYPE}, {hour_us} long, {count} long"
    partial = frame.select(lat, lon, hour_us).mapInArrow(
        _CountBatches(
            lat=lat, lon=lon, hour_us=hour_us, cell=cell, count=count, resolution=resolution
        ),
        schema,
    )
    return partial.groupBy(cell, hour_us).agg(F.sum(count).alias(count))
