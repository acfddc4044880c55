"""The canonical event schema and its pandera models, shared by every pipeline.

Every source table is mapped onto the reference (courier) schema, so the names below are the
project's vocabulary: a ride pickup's ``Date/Time`` becomes ``courier_location_timestamp``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

EVENT_TIME = "courier_location_timestamp"
EVENT_LAT = "courier_lat"
EVENT_LON = "courier_lon"
ORDER_CREATED = "order_created_timestamp"
VENUE_LAT = "restaurant_lat"
VENUE_LON = "restaurant_lon"
COURIER_ID = "courier_id"
ORDER_NUMBER = "order_number"
SOURCE_ROW = "source_row"
VENUE_ID = "restaurant_id"
REJECT_REASON = "reject_reason"
REJECT_COLUMN = "reject_column"

#: Columns a source must provide: an event needs a time and a place.
REQUIRED_COLUMNS = (EVENT_TIME, EVENT_LAT, EVENT_LON)
#: Columns a source may provide; absent ones are filled with nulls.
OPTIONAL_COLUMNS = (COURIER_ID, ORDER_NUMBER, ORDER_CREATED, VENUE_LAT, VENUE_LON)
CANONICAL_COLUMNS = (
    COURIER_ID,
    ORDER_NUMBER,
    EVENT_TIME,
    EVENT_LAT,
    EVENT_LON,
    ORDER_CREATED,
    VENUE_LAT,
    VENUE_LON,
)
COORDINATE_COLUMNS = (EVENT_LAT, EVENT_LON, VENUE_LAT, VENUE_LON)
TIMESTAMP_COLUMNS = (EVENT_TIME, ORDER_CREATED)

_UTC = pd.DatetimeTZDtype(unit="ns", tz="UTC")


class _ValidatedInPlace(pa.DataFrameModel):
    """Validates without copying the frame first (pandera copies by default).

    Nothing is coerced, so validating in place changes nothing; at 10M events the copy took
    ~3 s and a second copy of the table in memory.
    """

    @classmethod
    def validate(  # noqa: PLR0913, PLR0917 - pandera's own signature
        cls,
        check_obj: pd.DataFrame,
        head: int | None = None,
        tail: int | None = None,
        sample: int | None = None,
        random_state: int | None = None,
        lazy: bool = False,
        inplace: bool = True,
    ) -> pd.DataFrame:
        return super().validate(check_obj, head, tail, sample, random_state, lazy, inplace)


class CanonicalEvents(_ValidatedInPlace):
    """Any event source after column mapping, before cleaning.

    Values are still raw: timestamps may be unparsable text and coordinates may be out of
    range. Only the structure is checked here; the cleaning node judges the values row by row
    so that bad rows are quarantined instead of failing the run.
    """

    source_row: Series[int] = pa.Field(unique=True, ge=0)
    courier_id: Series[Any] = pa.Field(nullable=True)
    order_number: Series[Any] = pa.Field(nullable=True)
    courier_location_timestamp: Series[Any] = pa.Field(nullable=True)
    courier_lat: Series[float] = pa.Field(nullable=True)
    courier_lon: Series[float] = pa.Field(nullable=True)
    order_created_timestamp: Series[Any] = pa.Field(nullable=True)
    restaurant_lat: Series[float] = pa.Field(nullable=True)
    restaurant_lon: Series[float] = pa.Field(nullable=True)

    class Config:
        strict = True


class CleanEvents(_ValidatedInPlace):
    """Events that passed every cleaning rule: UTC timestamps, valid coordinates, unique orders."""

    source_row: Series[int] = pa.Field(unique=True, ge=0)
    courier_id: Series[Any] = pa.Field(nullable=True)
    order_number: Series[Any] = pa.Field(nullable=True)
    courier_location_timestamp: Series[_UTC] = pa.Field(nullable=False)
    courier_lat: Series[float] = pa.Field(ge=-90, le=90)
    courier_lon: Series[float] = pa.Field(ge=-180, le=180)
    order_created_timestamp: Series[_UTC] = pa.Field(nullable=True)
    restaurant_lat: Series[float] = pa.Field(nullable=True, ge=-90, le=90)
    restaurant_lon: Series[float] = pa.Field(nullable=True, ge=-180, le=180)
    restaurant_id: Series[pd.Int64Dtype] = pa.Field(nullable=True)

    class Config:
        strict = True

    @pa.dataframe_check(error="order_created_timestamp is after courier_location_timestamp")
    @classmethod
    def ping_not_before_order(cls, df: pd.DataFrame) -> Series[bool]:
        """A courier cannot collect an order before it was created."""
        return ~(df[ORDER_CREATED] > df[EVENT_TIME])  # NaT compares False
