"""Issue #15 items 9 and 10: mixed timestamp forms and out-of-range times in data_processing."""

from __future__ import annotations

import pandas as pd
import pytest

from geo_busyness.pipelines.data_processing.nodes import (
    map_to_canonical,
    split_clean_and_rejected,
)
from geo_busyness.schemas import CleanEvents
from tests.pipelines.data_processing.conftest import RIDE_PARAMS, processing_params
from tests.pipelines.data_processing.test_nodes import AS_OF, event, rejection, split


def test_mixed_naive_and_offset_aware_times_are_each_read_right():
    """Item 9: one ``...Z`` value among naive ones gave 'Mixed timezones detected'."""
    clean, rejected = split(
        event(courier_location_timestamp="2026-01-05T10:30:00", order_number=1),
        event(courier_location_timestamp="2026-01-05T17:30:00Z", order_number=2),
        event(courier_location_timestamp="2026-01-05T18:30:00+01:00", order_number=3),
        event(courier_location_timestamp="not a time", order_number=4),
    )
    assert rejection(rejected, 3) == ("unparsable_timestamp", "courier_location_timestamp")
    times = clean.set_index("source_row")["courier_location_timestamp"]
    # naive: Regina local time (UTC-6); aware: converted from its own offset
    assert times[0] == pd.Timestamp("2026-01-05T16:30:00Z")
    assert times[1] == pd.Timestamp("2026-01-05T17:30:00Z")
    assert times[2] == pd.Timestamp("2026-01-05T17:30:00Z")
    CleanEvents.validate(clean)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("order_created_timestamp", "2500-01-01T00:00:00"),
        ("courier_location_timestamp", "9999-12-31T23:00:00"),
        ("courier_location_timestamp", "0001-01-01T00:00:00"),
        ("courier_location_timestamp", "1600-06-01T00:00:00Z"),
        ("courier_location_timestamp", "2262-04-12T00:00:00"),
        ("order_created_timestamp", "1850-01-01T00:00:00+05:00"),
    ],
)
def test_out_of_range_times_are_quarantined_as_such(column, value):
    """Item 10: year 2500 landed in clean_events as 1915-06-14; 9999 and 1 got the wrong reason."""
    clean, rejected = split(event(order_number=1), event(order_number=2, **{column: value}))
    assert clean["source_row"].tolist() == [0]
    assert rejection(rejected, 1) == ("timestamp_out_of_range", column)
    assert clean["courier_location_timestamp"].dt.year.tolist() == [2026]


def test_ride_pickups_in_year_9999_are_quarantined_not_moved_to_1816(ride_table):
    params = processing_params(**RIDE_PARAMS, as_of=AS_OF)
    ride_table.loc[2, "Date/Time"] = "12/31/9999 23:00:00"
    ride_table.loc[4, "Date/Time"] = "1/1/0001 0:00:00"
    canonical = map_to_canonical(ride_table, params["column_mapping"])
    clean, rejected = split_clean_and_rejected(canonical, params)
    assert sorted(rejected["source_row"]) == [2, 4]
    assert set(rejected["reject_reason"]) == {"timestamp_out_of_range"}
    assert clean["courier_location_timestamp"].min().year == 2014
    assert clean["courier_location_timestamp"].max().year == 2014
