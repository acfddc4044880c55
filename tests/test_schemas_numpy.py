"""The validators' numpy pass: it vouches only for frames pandera passes, and every other
frame gets pandera's own verdict and error (issue #25 item 2: validation at 10M events)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from geo_busyness.schemas import BLANK_LINE, LINE_FAULT, LINE_TEXT, CanonicalEvents, CleanEvents
from tests.test_schemas import SCHEMA_ERRORS, canonical_frame, clean_frame

UTC_TIMES = pd.to_datetime(["2026-01-05 16:30", "2026-01-05 17:00"]).tz_localize("UTC")

#: Frames around every rule of CleanEvents: the valid one, each broken, and the edges.
CLEAN_CASES = {
    "valid": {},
    "lat-out-of-range": {"courier_lat": [200.0, 50.0]},
    "lon-out-of-range": {"courier_lon": [-104.6, 181.0]},
    "lat-at-the-limit": {"courier_lat": [90.0, -90.0]},
    "restaurant-lat-out-of-range": {"restaurant_lat": [-91.0, np.nan]},
    "restaurant-all-null": {"restaurant_lat": [np.nan, np.nan], "restaurant_lon": [np.nan] * 2},
    "restaurant-lon-inf": {"restaurant_lon": [np.inf, np.nan]},
    "missing-lat": {"courier_lat": [np.nan, 50.0]},
    "naive-timestamps": {"courier_location_timestamp": UTC_TIMES.tz_localize(None).as_unit("ns")},
    "microsecond-timestamps": {"courier_location_timestamp": UTC_TIMES.as_unit("us")},
    "missing-timestamp": {"courier_location_timestamp": [UTC_TIMES[0], pd.NaT]},
    "duplicate-source-row": {"source_row": np.array([3, 3], dtype=np.int64)},
    "negative-source-row": {"source_row": np.array([-1, 3], dtype=np.int64)},
    "unique-but-decreasing-source-row": {"source_row": np.array([5, 2], dtype=np.int64)},
    "int32-source-row": {"source_row": np.array([0, 1], dtype=np.int32)},
    "extra-column": {"reject_reason": ["x", "y"]},
    "ping-before-order": {"order_created_timestamp": UTC_TIMES + pd.Timedelta(minutes=1)},
    "ping-at-order": {"order_created_timestamp": UTC_TIMES},
    "float-restaurant-id": {"restaurant_id": [1.0, np.nan]},
}


def _pandera_passes(model, frame: pd.DataFrame) -> bool:
    """pandera's own verdict (its schema, without the model's numpy pass)."""
    try:
        model.to_schema().validate(frame.copy(), lazy=True)
    except SCHEMA_ERRORS:
        return False
    return True


def _validate_passes(model, frame: pd.DataFrame) -> bool:
    try:
        model.validate(frame, lazy=True)
    except SCHEMA_ERRORS:
        return False
    return True


@pytest.mark.parametrize("overrides", CLEAN_CASES.values(), ids=CLEAN_CASES.keys())
def test_clean_events_verdicts_are_pandera_s(overrides):
    frame = clean_frame(**overrides)
    expected = _pandera_passes(CleanEvents, frame)
    assert _validate_passes(CleanEvents, frame) == expected
    if CleanEvents.passes_in_numpy(frame):
        assert expected, "the numpy pass vouched for a frame pandera fails"


def test_pipeline_shaped_frames_are_vouched_for_without_pandera():
    assert CleanEvents.passes_in_numpy(clean_frame())
    assert CleanEvents.passes_in_numpy(clean_frame().iloc[:0])
    assert CanonicalEvents.passes_in_numpy(canonical_frame())
    assert CleanEvents.validate(clean_frame()) is not None


def test_a_frame_the_numpy_pass_cannot_vouch_for_gets_pandera_s_error_naming_the_column():
    frame = clean_frame(courier_lat=[200.0, 50.0])
    assert not CleanEvents.passes_in_numpy(frame)
    with pytest.raises(pandera.errors.SchemaError, match="courier_lat"):
        CleanEvents.validate(frame)
    with pytest.raises(pandera.errors.SchemaErrors, match="courier_lat"):
        CleanEvents.validate(frame, lazy=True)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"source_row": np.array([0, 0], dtype=np.int64)},
        {"courier_lat": ["50.4", "x"]},
        {"Base": ["B02512", "B02512"]},
        {LINE_FAULT: [None, BLANK_LINE], LINE_TEXT: ""},
        {LINE_FAULT: [None, "bad"], LINE_TEXT: ""},
    ],
    ids=["valid", "duplicate-row", "text-lat", "extra", "known-fault", "unknown-fault"],
)
def test_canonical_events_verdicts_are_pandera_s(overrides):
    frame = canonical_frame(**overrides)
    expected = _pandera_passes(CanonicalEvents, frame)
    assert _validate_passes(CanonicalEvents, frame) == expected
    if CanonicalEvents.passes_in_numpy(frame):
        assert expected


def test_random_frames_get_pandera_s_verdict():
    """Random coordinates near the limits, random order times and rows: the same verdicts."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 6))
        frame = pd.DataFrame(
            {
                "source_row": rng.choice(8, n, replace=False).astype(np.int64),
                "courier_id": np.arange(n),
                "order_number": np.arange(n),
                "courier_location_timestamp": UTC_TIMES[0] + pd.to_timedelta(np.arange(n), "min"),
                "courier_lat": rng.choice([-90.5, -90.0, 0.0, 89.9, 90.0, 90.1], n),
                "courier_lon": rng.choice([-180.0, 0.0, 180.0, 180.5], n),
                "order_created_timestamp": UTC_TIMES[0]
                + pd.to_timedelta(rng.integers(-3, 3, n), "min"),
                "restaurant_lat": rng.choice([np.nan, 0.0, 91.0], n),
                "restaurant_lon": rng.choice([np.nan, 0.0, -181.0], n),
                "restaurant_id": pd.array(rng.choice([1, 2], n), dtype="Int64"),
            }
        )
        expected = _pandera_passes(CleanEvents, frame)
        assert _validate_passes(CleanEvents, frame) == expected
        assert not CleanEvents.passes_in_numpy(frame) or expected
