"""The pandera models: what a canonical and a clean events table may and may not be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from geo_busyness.schemas import (
    BLANK_LINE,
    CANONICAL_COLUMNS,
    LINE_FAULT,
    LINE_TEXT,
    CanonicalEvents,
    CleanEvents,
)


def clean_frame(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "source_row": np.array([0, 1], dtype=np.int64),
            "courier_id": [1001, 1002],
            "order_number": [1, 2],
            "courier_location_timestamp": pd.to_datetime(["2026-01-05 16:30", "2026-01-05 17:00"])
            .tz_localize("UTC")
            .as_unit("ns"),
            "courier_lat": [50.45, 50.46],
            "courier_lon": [-104.6, -104.61],
            "order_created_timestamp": pd.to_datetime(["2026-01-05 16:00", None])
            .tz_localize("UTC")
            .as_unit("ns"),
            "restaurant_lat": [50.4501, np.nan],
            "restaurant_lon": [-104.6001, np.nan],
            "restaurant_id": pd.array([1, None], dtype="Int64"),
        }
    )
    for col, values in overrides.items():
        frame[col] = values
    return frame


def canonical_frame(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "source_row": np.array([0, 1], dtype=np.int64),
            "courier_id": [None, 7],
            "order_number": [None, "A-1"],
            "courier_location_timestamp": ["not a timestamp", "2026-01-05T10:00:00"],
            "courier_lat": [np.nan, 500.0],  # raw values: the cleaning node judges them
            "courier_lon": [-104.6, -104.6],
            "order_created_timestamp": [None, None],
            "restaurant_lat": [np.nan, np.nan],
            "restaurant_lon": [np.nan, np.nan],
        }
    )
    for col, values in overrides.items():
        frame[col] = values
    return frame


#: pandera raises SchemaErrors (plural) for some structural failures such as strictness.
SCHEMA_ERRORS = (pandera.errors.SchemaError, pandera.errors.SchemaErrors)


def test_clean_frame_validates():
    CleanEvents.validate(clean_frame())


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"courier_lat": [200.0, 50.0]}, id="lat-out-of-range"),
        pytest.param({"courier_lon": [-104.6, 181.0]}, id="lon-out-of-range"),
        pytest.param({"restaurant_lat": [-91.0, np.nan]}, id="restaurant-lat-out-of-range"),
        pytest.param({"courier_lat": [np.nan, 50.0]}, id="missing-lat"),
        pytest.param(
            {
                "courier_location_timestamp": pd.to_datetime(
                    ["2026-01-05 16:30", "2026-01-05 17:00"]
                ).as_unit("ns")
            },
            id="naive-timestamps",
        ),
        pytest.param(
            {
                "courier_location_timestamp": pd.to_datetime(
                    ["2026-01-05 16:30", "2026-01-05 17:00"]
                )
                .tz_localize("America/Regina")
                .as_unit("ns")
            },
            id="non-utc-timestamps",
        ),
        pytest.param(
            {"courier_location_timestamp": ["2026-01-05T16:30:00Z", "2026-01-05T17:00:00Z"]},
            id="text-timestamps",
        ),
        pytest.param({"source_row": np.array([3, 3], dtype=np.int64)}, id="duplicate-source-row"),
        pytest.param({"source_row": np.array([-1, 3], dtype=np.int64)}, id="negative-source-row"),
        pytest.param({"reject_reason": ["x", "y"]}, id="extra-column"),
        pytest.param(
            {
                "order_created_timestamp": pd.to_datetime(["2026-01-05 16:45", None])
                .tz_localize("UTC")
                .as_unit("ns")
            },
            id="ping-before-order",
        ),
    ],
)
def test_clean_events_rejects(overrides):
    with pytest.raises(SCHEMA_ERRORS):
        CleanEvents.validate(clean_frame(**overrides))


def test_clean_events_requires_every_column():
    with pytest.raises(SCHEMA_ERRORS, match="restaurant_id"):
        CleanEvents.validate(clean_frame().drop(columns="restaurant_id"))


def test_canonical_events_accepts_raw_values_but_checks_structure():
    CanonicalEvents.validate(canonical_frame())
    with pytest.raises(SCHEMA_ERRORS):
        CanonicalEvents.validate(canonical_frame().drop(columns="source_row"))
    with pytest.raises(SCHEMA_ERRORS):
        CanonicalEvents.validate(canonical_frame(courier_lat=["50.4", "x"]))  # not yet float
    with pytest.raises(SCHEMA_ERRORS):
        CanonicalEvents.validate(canonical_frame(Base=["B02512", "B02512"]))  # strict
    columns = CanonicalEvents.to_schema().columns
    assert set(columns) == {"source_row", *CANONICAL_COLUMNS, LINE_FAULT, LINE_TEXT}
    # The raw loader's columns for lines it could not read: optional, the fault a known one.
    assert not columns[LINE_FAULT].required and not columns[LINE_TEXT].required
    CanonicalEvents.validate(canonical_frame(**{LINE_FAULT: [None, BLANK_LINE], LINE_TEXT: ""}))
    with pytest.raises(SCHEMA_ERRORS):
        CanonicalEvents.validate(canonical_frame(**{LINE_FAULT: [None, "bad"], LINE_TEXT: ""}))
