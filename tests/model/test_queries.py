"""split_queries: the server's checks, applied row by row for batch use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.queries import (
    RequestError,
    check_known_area,
    split_queries,
    validate_queries,
)
from tests.serving.cases import TS

RAW = pd.DataFrame(
    {
        TS: ["2026-01-05T12:30:00Z", None, "soon", "2026-01-05T13:00:00+01:00", "2026-01-05T14:00"],
        "courier_lat": ["50.45", "50.45", "95", "north", "50.46"],
        "courier_lon": [-104.6, -104.6, -104.6, np.nan, 181.0],
    }
)


def test_each_refused_row_is_named_once_by_its_first_broken_rule():
    valid, problems = split_queries(RAW)
    assert problems["source_row"].tolist() == [1, 2, 3, 4]
    # Row 2 breaks two rules (timestamp and latitude): the timestamp is checked first.
    assert list(zip(problems["reject_column"], problems["reject_reason"], strict=True)) == [
        (TS, "missing_value"),
        (TS, "unparsable_timestamp"),
        ("courier_lat", "wrong_type"),
        ("courier_lon", "coordinates_out_of_range"),
    ]
    for row, message in zip(problems["source_row"], problems["reject_message"], strict=True):
        with pytest.raises(RequestError) as refused:
            validate_queries(RAW.iloc[[row]])
        assert refused.value.message == message  # the server's words for the row alone
    assert valid["source_row"].tolist() == [0]
    expected = validate_queries(RAW.iloc[[0]])
    pd.testing.assert_frame_equal(valid.drop(columns="source_row"), expected)


# ---------- the service area: the cleaning rules' reasons (issue #23 item 4) ----------
PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7580, -73.9855)


def paris_cells() -> np.ndarray:
    """Known cells of a model fitted on Paris events (resolution 7, ~15 km across)."""
    from geo_busyness.model.geo import h3_cells  # noqa: PLC0415

    offsets = np.linspace(-0.06, 0.06, 13)
    lat, lon = np.meshgrid(PARIS[0] + offsets, PARIS[1] + offsets * 1.5)
    return np.unique(h3_cells(lat.ravel(), lon.ravel(), 7))


def queries(*points: tuple[float, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            TS: "2026-01-05T12:30:00Z",
            "courier_lat": [lat for lat, _ in points],
            "courier_lon": [lon for _, lon in points],
        }
    )


def test_a_latitude_beyond_90_with_a_longitude_within_is_swapped():
    frame = queries((-104.6, 50.45), (140.7, -200.0), (50.45, -104.6))
    valid, problems = split_queries(frame)
    assert list(zip(problems["source_row"], problems["reject_reason"], strict=True)) == [
        (0, "swapped_coordinates"),
        (1, "coordinates_out_of_range"),
    ]
    assert valid["source_row"].tolist() == [2]
    with pytest.raises(RequestError, match=r"Swapped coordinates \(swapped_coordinates\)"):
        validate_queries(frame.iloc[[0]])


def test_the_models_area_refuses_far_and_swapped_points_with_the_cleaning_reasons():
    cells = paris_cells()
    frame = queries(PARIS, PARIS[::-1], NEW_YORK, NEW_YORK[::-1], (PARIS[0] + 0.1, PARIS[1]))
    valid, problems = split_queries(frame, cells, 20.0)
    assert list(zip(problems["source_row"], problems["reject_reason"], strict=True)) == [
        (1, "swapped_coordinates"),  # (2.35, 48.86): in range, Paris only once swapped
        (2, "outside_service_area"),
        (3, "outside_service_area"),  # New York either way round
    ]
    # ~11 km north of the grid's centre: within 20 km of a known cell.
    assert valid["source_row"].tolist() == [0, 4]
    for row, message in zip(problems["source_row"], problems["reject_message"], strict=True):
        with pytest.raises(RequestError) as refused:
            check_known_area(validate_queries(frame.iloc[[row]]), cells, 20.0)
        assert refused.value.message == message  # the server's words for the row alone


def test_without_cells_or_distance_the_area_is_not_checked():
    frame = queries(NEW_YORK)
    assert split_queries(frame, None, 20.0)[1].empty
    assert split_queries(frame, paris_cells(), 0)[1].empty
    check_known_area(validate_queries(frame), paris_cells(), None)  # no error
