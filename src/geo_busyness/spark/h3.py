"""H3 cells of points in Spark, vectorised: Arrow record batches through h3ronpy (``mapInArrow``),
never a Python call per row. Each batch of a partition is indexed by ``model.geo.h3_cells``, the
function the pandas path uses, so both engines give the same cells.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame

#: H3 cells are uint64 with the top bit always 0, so they fit Spark's signed 64-bit LongType.
CELL_TYPE = "long"


class _IndexBatches:
    """Picklable ``mapInArrow`` function: (lat, lon, *keep) batches -> (cell, *keep)."""

    def __init__(self, lat: str, lon: str, keep: tuple[str, ...], cell: str, resolution: int):
        self.lat, self.lon, self.keep, self.cell = lat, lon, keep, cell
        self.resolution = int(resolution)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from geo_busyness.model.geo import h3_cells  # noqa: PLC0415 - on the executors

        for batch in batches:
            lat = batch.column(self.lat).to_numpy(zero_copy_only=False)
            lon = batch.column(self.lon).to_numpy(zero_copy_only=False)
            cells = h3_cells(lat, lon, self.resolution).view(np.int64)
            yield pa.RecordBatch.from_arrays(
                [pa.array(cells, pa.int64()), *(batch.column(name) for name in self.keep)],
                names=[self.cell, *self.keep],
            )


def with_h3_cells(
    frame: DataFrame, lat: str, lon: str, resolution: int, cell: str = "cell"
) -> DataFrame:
    """``frame``'s columns but ``lat`` and ``lon``, with the H3 cell (LongType) of each point
    first. Points must be valid coordinates (clean events are)."""
    keep = tuple(name for name in frame.columns if name not in (lat, lon))
    fields = {field.name: field for field in frame.schema.fields}
    schema = ", ".join(
        [
            f"{cell} {CELL_TYPE}",
            *(f"`{name}` {fields[name].dataType.simpleString()}" for name in keep),
        ]
    )
    return frame.select(lat, lon, *keep).mapInArrow(
        _IndexBatches(lat, lon, keep, cell, resolution), schema
    )
