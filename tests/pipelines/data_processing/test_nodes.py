"""Mapping, cleaning and the rejected-share gate on small hand-made tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo_busyness.pipelines.data_processing.nodes import (
    REJECT_COLUMN,
    REJECT_REASONS,
    DataQualityError,
    EventMappingError,
    _parse_timestamps,
    enforce_rejected_share,
    map_to_canonical,
    split_clean_and_rejected,
)
from geo_busyness.schemas import (
    BLANK_LINE,
    CANONICAL_COLUMNS,
    LINE_FAULT,
    LINE_TEXT,
    SOURCE_LINE,
    UNBALANCED_QUOTE,
    CanonicalEvents,
    CleanEvents,
)
from tests.pipelines.data_processing.conftest import (
    RIDE_COLUMN_MAPPING,
    RIDE_PARAMS,
    RIDE_ROWS,
    processing_params,
)

IDENTITY = {col: col for col in CANONICAL_COLUMNS}
AS_OF = "2026-06-01T00:00:00Z"


def event(**overrides: Any) -> dict[str, Any]:
    """One valid reference-schema row in Regina (naive local time), with overrides."""
    row = {
        "courier_id": 1001,
        "courier_location_timestamp": "2026-01-05T10:30:00",
        "courier_lat": 50.4500,
        "courier_lon": -104.6000,
        "order_created_timestamp": "2026-01-05T10:00:00",
        "restaurant_lat": 50.4501,
        "restaurant_lon": -104.6002,
    }
    return {**row, **overrides}


def raw_table(*rows: dict[str, Any]) -> pd.DataFrame:
    """Rows with distinct order numbers unless a row sets its own."""
    return pd.DataFrame(
        [{"order_number": 10_000_000 + i, **row} for i, row in enumerate(rows)],
        columns=list(CANONICAL_COLUMNS),
    )


def split(*rows: dict[str, Any], **param_overrides: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    params = processing_params(**{"as_of": AS_OF, **param_overrides})
    canonical = map_to_canonical(raw_table(*rows), params["column_mapping"])
    return split_clean_and_rejected(canonical, params)


def rejection(rejected: pd.DataFrame, source_row: int) -> tuple[str, str]:
    """(reason, column) a row was rejected with."""
    row = rejected.set_index("source_row").loc[source_row]
    return str(row["reject_reason"]), str(row[REJECT_COLUMN])


# ---------- map_to_canonical ----------


def test_map_renames_numbers_rows_and_fills_optional_columns():
    raw = pd.DataFrame(
        {
            "when": ["2026-01-05 10:00", "2026-01-05 11:00", "2026-01-05 12:00"],
            "y": [50.1, 50.2, 50.3],
            "x": [-104.1, -104.2, -104.3],
            "driver": ["a", "b", "c"],
            "ignored": [1, 2, 3],
        },
        index=[7, 3, 99],  # the source's own index plays no part
    )
    mapping = {
        "courier_location_timestamp": "when",
        "courier_lat": "y",
        "courier_lon": "x",
        "courier_id": "driver",
        "order_number": None,  # mapped to null: filled with nulls
        # order_created_timestamp, restaurant_lat and restaurant_lon left out: filled with nulls
    }
    canonical = map_to_canonical(raw, mapping)
    assert list(canonical.columns) == ["source_row", *CANONICAL_COLUMNS]
    assert canonical["source_row"].tolist() == [0, 1, 2]
    assert canonical["source_row"].dtype == np.int64
    assert canonical["courier_location_timestamp"].tolist() == raw["when"].tolist()
    assert canonical["courier_lat"].tolist() == [50.1, 50.2, 50.3]
    assert canonical["courier_lon"].tolist() == [-104.1, -104.2, -104.3]
    assert canonical["courier_id"].tolist() == ["a", "b", "c"]
    for col in ("order_number", "order_created_timestamp", "restaurant_lat", "restaurant_lon"):
        assert canonical[col].isna().all(), col
    for col in ("restaurant_lat", "restaurant_lon"):
        assert pd.api.types.is_float_dtype(canonical[col]), col
    CanonicalEvents.validate(canonical)


def test_map_coerces_non_numeric_coordinates_to_nan():
    raw = raw_table(
        event(courier_lat="50.45"),
        event(courier_lat="north-ish"),
        event(courier_lon=""),
        event(restaurant_lat=None),
    )
    canonical = map_to_canonical(raw, IDENTITY)
    for col in ("courier_lat", "courier_lon", "restaurant_lat", "restaurant_lon"):
        assert canonical[col].dtype == np.float64, col
    assert canonical["courier_lat"].iloc[0] == 50.45
    assert np.isnan(canonical["courier_lat"].iloc[1])
    assert np.isnan(canonical["courier_lon"].iloc[2])
    assert np.isnan(canonical["restaurant_lat"].iloc[3])
    CanonicalEvents.validate(canonical)


def test_map_refuses_a_mapped_column_the_table_lacks():
    raw = raw_table(event()).drop(columns="restaurant_lon")
    with pytest.raises(EventMappingError, match="restaurant_lon"):
        map_to_canonical(raw, IDENTITY)


@pytest.mark.parametrize("how", ["left out", "mapped to null"])
def test_map_refuses_an_unmapped_required_column(how):
    mapping = {k: v for k, v in IDENTITY.items() if k != "courier_lat"}
    if how == "mapped to null":
        mapping["courier_lat"] = None
    with pytest.raises(EventMappingError, match="courier_lat"):
        map_to_canonical(raw_table(event()), mapping)


def test_map_refuses_an_unknown_canonical_column():
    with pytest.raises(EventMappingError, match="courier_speed"):
        map_to_canonical(raw_table(event()), {**IDENTITY, "courier_speed": "courier_id"})


# ---------- split_clean_and_rejected: one test per reason ----------


def test_valid_rows_are_clean():
    clean, rejected = split(event(), event(courier_id=1002))
    assert len(clean) == 2
    assert rejected.empty


@pytest.mark.parametrize(
    "column",
    ["courier_location_timestamp", "courier_lat", "order_created_timestamp", "restaurant_lon"],
)
def test_missing_value(column):
    clean, rejected = split(event(), event(**{column: None}))
    assert clean["source_row"].tolist() == [0]
    assert rejection(rejected, 1) == ("missing_value", column)


@pytest.mark.parametrize("stamp", ["not a timestamp", "2026-02-30 12:00:00", "31/31/2026 99:99"])
def test_unparsable_timestamp(stamp):
    clean, rejected = split(event(), event(courier_location_timestamp=stamp))
    assert clean["source_row"].tolist() == [0]
    assert rejection(rejected, 1) == ("unparsable_timestamp", "courier_location_timestamp")


@pytest.mark.parametrize(
    ("ping", "created"),
    [
        pytest.param(
            "2025-11-02T01:30:00", "2025-11-02T00:50:00", id="fall-back-hour-happens-twice"
        ),
        pytest.param(
            "2026-03-08T02:30:00", "2026-03-08T01:50:00", id="spring-forward-hour-never-happens"
        ),
    ],
)
def test_ambiguous_local_time(ping, created):
    clean, rejected = split(
        event(
            courier_location_timestamp="2025-11-02T00:30:00",
            order_created_timestamp="2025-11-02T00:10:00",
        ),
        event(courier_location_timestamp=ping, order_created_timestamp=created),
        source_timezone="America/New_York",
    )
    assert clean["source_row"].tolist() == [0]
    assert rejection(rejected, 1) == ("ambiguous_local_time", "courier_location_timestamp")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("courier_lat", 90.5),
        ("courier_lat", -200.0),
        ("courier_lon", 180.01),
        ("restaurant_lon", -181.0),
    ],
)
def test_coordinates_out_of_range(column, value):
    clean, rejected = split(
        event(), event(**{column: value}), event(courier_lat=90.0, courier_lon=-180.0)
    )
    assert clean["source_row"].tolist() == [0, 2]  # the limits themselves are valid
    assert rejection(rejected, 1) == ("coordinates_out_of_range", column)


def test_outside_service_area():
    area = {"lat_min": 50.40, "lat_max": 50.52, "lon_min": -104.70, "lon_max": -104.50}
    rows = (event(), event(courier_lat=50.30), event(courier_lon=-104.40))
    clean, rejected = split(*rows, service_area=area)
    assert clean["source_row"].tolist() == [0]
    assert rejection(rejected, 1) == ("outside_service_area", "courier_lat")
    assert rejection(rejected, 2) == ("outside_service_area", "courier_lon")
    # without a service area the same rows are fine
    clean, rejected = split(*rows, service_area=None)
    assert len(clean) == 3
    assert rejected.empty


def test_future_timestamp():
    rows = (
        event(),
        event(
            courier_location_timestamp="2026-01-07T10:30:00",
            order_created_timestamp="2026-01-07T10:00:00",
        ),
    )
    clean, rejected = split(*rows, as_of="2026-01-06T00:00:00Z")
    assert clean["source_row"].tolist() == [0]
    assert rejection(rejected, 1) == ("future_timestamp", "courier_location_timestamp")
    # a later as_of makes the same row valid
    clean, rejected = split(*rows, as_of="2026-01-08T00:00:00Z")
    assert len(clean) == 2
    # without as_of, "now" is the limit: 75 years ahead is the future
    clean, rejected = split(event(courier_location_timestamp="2101-01-05T10:30:00"), as_of=None)
    assert rejection(rejected, 0) == ("future_timestamp", "courier_location_timestamp")


def test_future_timestamp_with_a_naive_as_of_reads_it_in_the_source_timezone():
    # as_of as YAML gives it for `as_of: 2026-01-06 12:00` (no offset): Regina is UTC-6, so the
    # limit is 18:00 UTC; a ping at 11:30 local (17:30 UTC) is in the past, 12:30 in the future.
    clean, rejected = split(
        event(
            courier_location_timestamp="2026-01-06T11:30:00",
            order_created_timestamp="2026-01-06T11:00:00",
        ),
        event(
            courier_location_timestamp="2026-01-06T12:30:00",
            order_created_timestamp="2026-01-06T11:00:00",
        ),
        as_of="2026-01-06 12:00",
    )
    assert clean["source_row"].tolist() == [0]
    assert rejection(rejected, 1) == ("future_timestamp", "courier_location_timestamp")


def test_ping_before_order_creation():
    clean, rejected = split(
        event(),
        event(
            courier_location_timestamp="2026-01-05T10:30:00",
            order_created_timestamp="2026-01-05T10:30:00",
        ),
        event(
            courier_location_timestamp="2026-01-05T10:29:59",
            order_created_timestamp="2026-01-05T10:30:00",
        ),
    )
    assert clean["source_row"].tolist() == [0, 1]  # at the same second is allowed
    assert rejection(rejected, 2) == ("ping_before_order_creation", "courier_location_timestamp")


def test_duplicate_order_keeps_the_first_and_rejects_later_ones():
    clean, rejected = split(
        event(order_number=7, courier_id=1),
        event(order_number=8, courier_id=2),
        event(order_number=7, courier_id=3),
        event(order_number=7, courier_id=4),
    )
    assert clean["source_row"].tolist() == [0, 1]
    assert clean["courier_id"].tolist() == [1, 2]
    assert rejection(rejected, 2) == ("duplicate_order", "order_number")
    assert rejection(rejected, 3) == ("duplicate_order", "order_number")


def test_duplicate_order_keeps_the_first_valid_occurrence():
    clean, rejected = split(
        event(order_number=7, courier_lat=95.0),
        event(order_number=7, courier_id=2),
        event(order_number=7, courier_id=3),
    )
    assert clean["source_row"].tolist() == [1]
    assert rejection(rejected, 0) == ("coordinates_out_of_range", "courier_lat")
    assert rejection(rejected, 2) == ("duplicate_order", "order_number")


def test_a_row_with_two_faults_gets_the_earlier_reason():
    clean, rejected = split(
        event(courier_lat=95.0, courier_location_timestamp="yesterday"),
        event(courier_lon=None, courier_lat=-95.0),
        event(
            courier_location_timestamp="2101-01-05T10:30:00",
            order_created_timestamp="2101-01-05T11:00:00",
        ),
        event(courier_lat=95.0, courier_location_timestamp="2101-01-05T10:30:00"),
        event(
            order_number=10_000_000, courier_lat=95.0
        ),  # a repeat of row 0's order, and out of range
    )
    assert clean.empty
    assert rejection(rejected, 0) == ("unparsable_timestamp", "courier_location_timestamp")
    assert rejection(rejected, 1) == ("missing_value", "courier_lon")
    assert rejection(rejected, 2)[0] == "future_timestamp"
    assert rejection(rejected, 3) == ("coordinates_out_of_range", "courier_lat")
    assert rejection(rejected, 4) == ("coordinates_out_of_range", "courier_lat")
    assert list(rejected["reject_reason"].cat.categories) == list(REJECT_REASONS)


def test_rejected_rows_keep_their_values_and_a_reason_and_column():
    raw = raw_table(event(), event(courier_lat=123.0, courier_id=42))
    params = processing_params(as_of=AS_OF)
    _, rejected = split_clean_and_rejected(map_to_canonical(raw, IDENTITY), params)
    assert list(rejected.columns) == [
        "source_row",
        *CANONICAL_COLUMNS,
        "reject_reason",
        REJECT_COLUMN,
    ]
    row = rejected.iloc[0]
    assert (row["source_row"], row["courier_id"], row["courier_lat"]) == (1, 42, 123.0)
    assert row["courier_location_timestamp"] == "2026-01-05T10:30:00"  # as the source wrote it


def test_clean_timestamps_are_utc_converted_from_the_source_timezone():
    clean, _ = split(
        event(
            courier_location_timestamp="2026-01-05T10:00:00",
            order_created_timestamp="2026-01-05T09:40:00",
        )
    )
    for col in ("courier_location_timestamp", "order_created_timestamp"):
        assert clean[col].dtype == pd.DatetimeTZDtype(unit="ns", tz="UTC"), col
    # America/Regina keeps UTC-6 all year
    assert clean["courier_location_timestamp"].iloc[0] == pd.Timestamp("2026-01-05T16:00:00Z")
    assert clean["order_created_timestamp"].iloc[0] == pd.Timestamp("2026-01-05T15:40:00Z")
    # the same wall-clock time read in another zone lands elsewhere
    clean, _ = split(
        event(
            courier_location_timestamp="2026-07-05T10:00:00",
            order_created_timestamp="2026-07-05T09:40:00",
        ),
        source_timezone="America/New_York",
        as_of="2026-12-01T00:00:00Z",
    )
    assert clean["courier_location_timestamp"].iloc[0] == pd.Timestamp("2026-07-05T14:00:00Z")


def test_timestamps_with_an_offset_are_not_shifted_again():
    clean, _ = split(
        event(
            courier_location_timestamp="2026-01-05T10:00:00+01:00",
            order_created_timestamp="2026-01-05T09:40:00+01:00",
        )
    )
    assert clean["courier_location_timestamp"].iloc[0] == pd.Timestamp("2026-01-05T09:00:00Z")


def test_clean_and_rejected_partition_the_input_and_validate():
    rows = [
        event(),
        event(courier_lat=None),
        event(courier_location_timestamp="garbage"),
        event(courier_lon=500.0),
        event(courier_location_timestamp="2026-01-05T09:00:00"),  # before its order
        event(order_number=10_000_000),
        event(courier_id=1002, restaurant_lat=50.46, restaurant_lon=-104.61),
        event(courier_location_timestamp="2099-01-05T10:30:00"),
    ]
    params = processing_params(as_of=AS_OF)
    canonical = map_to_canonical(raw_table(*rows), IDENTITY)
    CanonicalEvents.validate(canonical)
    clean, rejected = split_clean_and_rejected(canonical, params)
    assert len(clean) + len(rejected) == len(rows)
    assert sorted([*clean["source_row"], *rejected["source_row"]]) == list(range(len(rows)))
    assert clean["source_row"].tolist() == [0, 6]
    assert rejected["reject_reason"].value_counts()[lambda n: n > 0].to_dict() == {
        "missing_value": 1,
        "unparsable_timestamp": 1,
        "coordinates_out_of_range": 1,
        "ping_before_order_creation": 1,
        "duplicate_order": 1,
        "future_timestamp": 1,
    }
    CleanEvents.validate(clean)
    # restaurant ids are derived from the restaurant's coordinates
    assert clean["restaurant_id"].nunique() == 2
    assert clean["restaurant_id"].notna().all()


def test_lines_the_csv_parser_could_not_read_are_quarantined_for_that():
    """The raw loader's rows for unreadable lines (all values null, LINE_FAULT set) get their
    fault as reason, in the source_line column, and keep the line's text."""
    raw = raw_table(event(), event(), event(), event())
    raw.loc[[1, 3], list(CANONICAL_COLUMNS)] = None
    raw[LINE_FAULT] = [None, UNBALANCED_QUOTE, None, BLANK_LINE]
    raw[LINE_TEXT] = [None, '1,"2', None, ""]
    canonical = CanonicalEvents.validate(map_to_canonical(raw, IDENTITY))
    clean, rejected = split_clean_and_rejected(canonical, processing_params(as_of=AS_OF))
    assert clean["source_row"].tolist() == [0, 2]
    assert LINE_FAULT not in clean.columns and LINE_TEXT not in clean.columns
    CleanEvents.validate(clean)
    assert rejection(rejected, 1) == (UNBALANCED_QUOTE, SOURCE_LINE)
    assert rejection(rejected, 3) == (BLANK_LINE, SOURCE_LINE)
    assert rejected[LINE_TEXT].tolist() == ['1,"2', ""]
    _, report = enforce_rejected_share(clean, rejected, 0.5)
    assert (report["rows_in"], report["rows_rejected"]) == (4, 2)


def test_a_source_without_restaurants_has_null_restaurant_ids():
    mapping = {**IDENTITY, "restaurant_lat": None, "restaurant_lon": None}
    raw = raw_table(event(), event()).drop(columns=["restaurant_lat", "restaurant_lon"])
    params = processing_params(as_of=AS_OF, column_mapping=mapping)
    clean, rejected = split_clean_and_rejected(map_to_canonical(raw, mapping), params)
    assert rejected.empty
    assert clean["restaurant_id"].isna().all()
    CleanEvents.validate(clean)


# ---------- enforce_rejected_share ----------


def test_rejected_share_under_the_threshold_passes_with_a_report():
    rows = [event() for _ in range(18)] + [
        event(courier_lat=99.0),
        event(courier_location_timestamp="x"),
    ]
    clean, rejected = split(*rows)
    passed, report = enforce_rejected_share(clean, rejected, 0.10)
    pd.testing.assert_frame_equal(passed, clean)
    assert report["rows_in"] == 20
    assert report["rows_clean"] == 18
    assert report["rows_rejected"] == 2
    assert report["rejected_fraction"] == pytest.approx(0.10)  # at the threshold is still a pass
    assert report["max_rejected_fraction"] == 0.10
    assert report["rejected_by_reason"] == {
        "coordinates_out_of_range": 1,
        "unparsable_timestamp": 1,
    }
    assert {
        (r["reason"], r["column"], r["rows"]) for r in report["rejected_by_reason_and_column"]
    } == {
        ("coordinates_out_of_range", "courier_lat", 1),
        ("unparsable_timestamp", "courier_location_timestamp", 1),
    }
    assert report["first_event_utc"] == "2026-01-05 16:30:00+00:00"


def test_no_rejected_rows_gives_an_empty_breakdown():
    clean, rejected = split(event(), event())
    _, report = enforce_rejected_share(clean, rejected, 0.0)
    assert report["rows_rejected"] == 0
    assert report["rejected_by_reason"] == {}
    assert report["rejected_by_reason_and_column"] == []


def test_rejected_share_over_the_threshold_fails_naming_counts_share_and_reasons():
    rows = [event() for _ in range(6)]
    rows += [event(courier_lat=99.0) for _ in range(3)]
    rows += [event(courier_location_timestamp="x")]
    clean, rejected = split(*rows)
    with pytest.raises(DataQualityError) as failure:
        enforce_rejected_share(clean, rejected, 0.05)
    message = str(failure.value)
    assert "Rejected 4 of 10 rows (40.0%)" in message
    assert "max_rejected_fraction=5.0%" in message
    assert "coordinates_out_of_range in courier_lat: 3" in message
    assert "unparsable_timestamp in courier_location_timestamp: 1" in message
    # the commonest reason comes first
    assert message.index("coordinates_out_of_range") < message.index("unparsable_timestamp")
    assert "rejected_events" in message


def test_an_empty_table_fails():
    clean, rejected = split(event())
    with pytest.raises(DataQualityError, match="no rows"):
        enforce_rejected_share(clean.iloc[:0], rejected.iloc[:0], 0.05)


# ---------- another source: ride pickups mapped by parameters only ----------


def test_ride_pickups_map_and_clean_with_parameters_only(ride_table):
    params = processing_params(**RIDE_PARAMS)
    canonical = map_to_canonical(ride_table, params["column_mapping"])
    CanonicalEvents.validate(canonical)
    assert canonical["courier_id"].isna().all()
    clean, rejected = split_clean_and_rejected(canonical, params)
    assert rejected.empty, rejected[["reject_reason", REJECT_COLUMN]].value_counts()
    assert len(clean) == RIDE_ROWS
    CleanEvents.validate(clean)
    # "4/1/2014 0:11:00" in New York (EDT, UTC-4) is 04:11 UTC
    assert clean["courier_location_timestamp"].iloc[0] == pd.Timestamp("2014-04-01T04:11:00Z")
    expected = pd.to_datetime(ride_table["Date/Time"], format="%m/%d/%Y %H:%M:%S")
    expected = expected.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    assert (clean["courier_location_timestamp"] == expected.to_numpy()).all()
    assert clean["courier_lat"].tolist() == ride_table["Lat"].tolist()
    assert clean["courier_lon"].tolist() == ride_table["Lon"].tolist()
    for col in ("order_number", "order_created_timestamp", "restaurant_id"):
        assert clean[col].isna().all(), col
    assert set(RIDE_COLUMN_MAPPING) == set(CANONICAL_COLUMNS)


def test_ride_pickups_still_get_rejected_for_what_they_can_get_wrong(ride_table):
    ride_table.loc[3, "Date/Time"] = "2014-04-01 00:11:00"  # not the declared format
    ride_table.loc[5, "Lon"] = -273.9  # (|lat| > 90 with |lon| <= 90 reads as swapped)
    ride_table["Lon"] = ride_table["Lon"].astype(object)
    ride_table.loc[7, "Lon"] = "n/a"
    ride_table.loc[9, "Date/Time"] = "11/2/2014 1:30:00"  # the fall-back hour in New York
    params = processing_params(**RIDE_PARAMS)
    clean, rejected = split_clean_and_rejected(
        map_to_canonical(ride_table, params["column_mapping"]), params
    )
    assert len(clean) == RIDE_ROWS - 4
    assert rejection(rejected, 3) == ("unparsable_timestamp", "courier_location_timestamp")
    assert rejection(rejected, 5) == ("coordinates_out_of_range", "courier_lon")
    assert rejection(rejected, 7) == ("missing_value", "courier_lon")
    assert rejection(rejected, 9) == ("ambiguous_local_time", "courier_location_timestamp")


# ---------- the Arrow fast path for ISO timestamps gives exactly what pandas gives ----------

TRICKY_STAMPS = [
    "2026-01-05T10:30:00",
    "2026-01-05 10:30:00",  # space, not T: pandas' path
    "2026-01-05T10:30:00.5",
    "2026-1-5T10:30:00",  # not zero-padded
    "  2026-01-05T10:30:00",
    "2026-01-05T10:30:00 ",
    "2026-01-05",
    "20260105T103000",
    "2026-02-30 12:00:00",  # impossible dates stay unparsable
    "2026-01-05T24:00:00",
    "yesterday",
    None,
]


def _pandas_reference(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values.astype("string"), format="ISO8601", errors="coerce")
    return parsed.dt.tz_localize("America/Regina").dt.tz_convert("UTC").dt.as_unit("ns")


@pytest.mark.parametrize("dtype", ["str", object])
@pytest.mark.parametrize(
    "extra",
    [[], ["2026-02-30T12:00:00", "2026-01-05T10:30:60"]],  # Arrow's strptime would roll these over
    ids=["usual", "rolled-over"],
)
def test_iso_timestamps_parse_as_pandas_parses_them(dtype, extra):
    values = pd.Series(TRICKY_STAMPS + extra, dtype=dtype)
    parsed, ambiguous, _ = _parse_timestamps(values, "ISO8601", "America/Regina")
    pd.testing.assert_series_equal(parsed, _pandas_reference(values), check_names=False)
    assert not ambiguous.any()
    if extra:
        assert parsed.iloc[-2:].isna().all()


def test_iso_timestamps_with_offsets_fall_back_to_pandas_whole():
    values = pd.Series(["2026-01-05T10:30:00Z", "2026-01-05T11:30:00Z", "nope"])
    parsed, _, _ = _parse_timestamps(values, "ISO8601", "America/Regina")
    assert list(parsed.iloc[:2]) == list(pd.to_datetime(values.iloc[:2], format="ISO8601"))
    assert pd.isna(parsed.iloc[2])


def test_cleaning_a_large_table_matches_row_by_row_expectations():
    """Clean rows keep the column order and the parsed (UTC) timestamps; the text is gone."""
    rows = [event(order_number=i) for i in range(1000)] + [
        event(courier_location_timestamp="2026-02-30T12:00:00", order_number=5000)
    ]
    clean, rejected = split(*rows)
    assert list(clean.columns) == [
        *map_to_canonical(raw_table(event()), IDENTITY).columns,
        "restaurant_id",
    ]
    assert len(clean) == 1000 and clean.index.equals(pd.RangeIndex(1000))
    assert (clean["courier_location_timestamp"] == pd.Timestamp("2026-01-05T16:30:00Z")).all()
    assert rejection(rejected, 1000) == ("unparsable_timestamp", "courier_location_timestamp")
    CleanEvents.validate(clean)
