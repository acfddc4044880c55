"""Row numbers in a Spark frame's own order, without moving its rows to one partition."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def with_row_numbers(frame: DataFrame, column: str) -> DataFrame:
    """``frame`` with ``column`` first: each row's 0-based position in the frame's order.

    Rows of a partition keep their order and partitions follow one another (a file is split
    in order; a sort range-partitions), so the position is the rows of the partitions before
    plus the place in its own. One small job counts the rows of each partition; the numbers
    are then a column expression. The frame is read twice: persist it if it is costly.
    """
    tagged = frame.withColumn("_partition", F.spark_partition_id()).withColumn(
        "_row_id", F.monotonically_increasing_id()
    )
    sizes = sorted(tagged.groupBy("_partition").count().collect())
    offsets, total = [], 0
    for partition, count in sizes:
        offsets += [F.lit(partition), F.lit(total)]
        total += count
    # monotonically_increasing_id = partition << 33 + position in the partition.
    position = F.col("_row_id") - F.shiftleft(F.col("_partition").cast("long"), 33)
    offset = F.element_at(F.create_map(*offsets), F.col("_partition")) if offsets else F.lit(0)
    numbered = tagged.withColumn(column, (offset + position).cast("long"))
    return numbered.select(column, *frame.columns)
