"""Issue #23 item 4: batch inference refuses the points processing quarantines, with the same
reasons, through the query checks the server and the SageMaker entry point share
(``model.queries``); the model's known cells come from clean events only."""

from __future__ import annotations

import pandas as pd
import pytest

from geo_busyness.model.queries import RequestError, known_cells, validate_model_queries
from geo_busyness.pipelines.data_processing.nodes import (
    map_to_canonical,
    service_area,
    split_clean_and_rejected,
)
from geo_busyness.pipelines.inference.nodes import split_inference_queries
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME
from tests.pipelines.data_processing.conftest import processing_params
from tests.serving.model_fixture import fit_model, synthetic_events

#: Courier points of other cities and a swapped Regina point, after the city's own events.
STRAYS = {
    "new_york": (40.7580, -73.9855),
    "paris": (48.8566, 2.3522),
    "regina_swapped": (-104.6050, 50.4550),
    "new_york_swapped": (-73.9855, 40.7580),
}


@pytest.fixture(scope="module")
def regina_source() -> pd.DataFrame:
    """Raw events of the model's city (its own seed and venues), then the strays."""
    events = synthetic_events(n_events=600)
    raw = pd.DataFrame(
        {
            EVENT_TIME: events[EVENT_TIME].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            EVENT_LAT: events[EVENT_LAT],
            EVENT_LON: events[EVENT_LON],
        }
    )
    strays = pd.DataFrame(
        {
            EVENT_TIME: "2026-01-20T12:00:00Z",
            EVENT_LAT: [lat for lat, _ in STRAYS.values()],
            EVENT_LON: [lon for _, lon in STRAYS.values()],
        }
    )
    return pd.concat([raw, strays], ignore_index=True)


def processing_reasons(raw: pd.DataFrame) -> dict[int, str]:
    """source_row -> reason, from the data_processing nodes (a source of time and place)."""
    mapping = {col: (col if col in raw else None) for col in processing_params()["column_mapping"]}
    params = processing_params(column_mapping=mapping, as_of="2026-06-01T00:00:00Z")
    canonical = map_to_canonical(raw, mapping)
    _, rejected = split_clean_and_rejected(canonical, params, service_area(canonical, params))
    return dict(zip(rejected["source_row"], rejected["reject_reason"].astype(str), strict=True))


def test_batch_inference_refuses_what_processing_quarantines_with_the_same_reasons(
    regina_source,
):
    expected = processing_reasons(regina_source)
    first_stray = len(regina_source) - len(STRAYS)
    assert expected == {
        first_stray: "outside_service_area",
        first_stray + 1: "outside_service_area",
        first_stray + 2: "swapped_coordinates",
        first_stray + 3: "outside_service_area",
    }
    model = fit_model()  # fitted on the same city's clean events
    valid, rejected, validation = split_inference_queries(
        regina_source, {"max_rejected_fraction": 1.0}, None, model
    )
    found = dict(zip(rejected["source_row"], rejected["reject_reason"], strict=True))
    assert found == expected
    assert len(valid) == first_stray and validation["rows_rejected"] == len(STRAYS)
    # Each message is what the server (and the SageMaker entry point) answers the row alone.
    for row, message in zip(rejected["source_row"], rejected["reject_message"], strict=True):
        with pytest.raises(RequestError) as refused:
            validate_model_queries(regina_source.iloc[[row]], model)
        assert refused.value.message == message


def test_without_the_model_only_the_range_swap_is_refused(regina_source):
    _, rejected, _ = split_inference_queries(regina_source, {"max_rejected_fraction": 1.0})
    assert rejected["reject_reason"].tolist() == ["swapped_coordinates"]


def test_the_distance_is_the_servers_unless_the_run_sets_it(regina_source):
    model = fit_model()
    far_south = regina_source.iloc[[0]].assign(**{EVENT_LAT: 50.45 - 30 / 111.2})  # ~30 km
    cells = known_cells(model)
    assert cells is not None
    _, rejected, _ = split_inference_queries(far_south, {"max_rejected_fraction": 1.0}, None, model)
    assert rejected["reject_reason"].tolist() == ["outside_service_area"]
    wide = {"max_rejected_fraction": 1.0, "max_distance_km": 60}
    valid, rejected, _ = split_inference_queries(far_south, wide, None, model)
    assert rejected.empty and len(valid) == 1
