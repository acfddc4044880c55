"""Issue #15 item 11: a year-9999 query row is quarantined as out of range, not a crash."""

from __future__ import annotations

import pandas as pd

from geo_busyness.pipelines.inference.nodes import split_inference_queries


def test_out_of_range_query_rows_are_quarantined_as_such():
    table = pd.DataFrame(
        {
            "courier_location_timestamp": [
                "2026-01-05T12:00:00Z",
                "9999-12-31T23:00:00",
                "0001-01-01T00:00:00Z",
                "2026-01-05T13:00:00Z",
            ],
            "courier_lat": [50.45] * 4,
            "courier_lon": [-104.6] * 4,
        }
    )
    valid, rejected, validation = split_inference_queries(table, {"max_rejected_fraction": 0.9})
    assert valid["source_row"].tolist() == [0, 3]
    assert rejected["source_row"].tolist() == [1, 2]
    assert set(rejected["reject_reason"]) == {"timestamp_out_of_range"}
    assert (valid["courier_location_timestamp"].dt.year == 2026).all()
    assert validation["rows_rejected"] == 2


def test_epoch_milliseconds_are_out_of_range_not_year_58000():
    table = pd.DataFrame(
        {
            "courier_location_timestamp": [1772452800000, 1772452800],
            "courier_lat": [50.45, 50.45],
            "courier_lon": [-104.6, -104.6],
        }
    )
    valid, rejected, _ = split_inference_queries(table, {"max_rejected_fraction": 0.9})
    assert rejected["reject_reason"].tolist() == ["timestamp_out_of_range"]
    assert valid["courier_location_timestamp"].tolist() == [pd.Timestamp("2026-03-02T12:00:00Z")]
