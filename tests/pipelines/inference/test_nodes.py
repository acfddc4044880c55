"""Inference nodes that need no model: splitting query rows, the forecast window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.pipelines.inference.nodes import (
    QueryRejectionError,
    accept_inference_queries,
    plan_forecast_window,
    report_inference,
    split_inference_queries,
)
from geo_busyness.pipelines.inference.pipeline import create_pipeline
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME, SOURCE_ROW
from geo_busyness.serving.requests import RequestError, validate_queries

ROWS = 3000
#: position -> (column, bad value, reason, column named)
BAD = {
    5: (EVENT_LAT, "200", "coordinates_out_of_range", EVENT_LAT),
    700: (EVENT_TIME, "2026-13-45T99:00", "unparsable_timestamp", EVENT_TIME),
    701: (EVENT_LON, None, "missing_value", EVENT_LON),
    1999: (EVENT_LON, "east", "wrong_type", EVENT_LON),
    2999: (EVENT_TIME, None, "missing_value", EVENT_TIME),
}


def query_table(rows: int = ROWS) -> pd.DataFrame:
    """Query rows as a CSV reader gives them (text), good unless spoiled."""
    hours = pd.date_range("2026-03-02", periods=rows, freq="17min", tz="UTC")
    return pd.DataFrame(
        {
            EVENT_TIME: hours.strftime("%Y-%m-%dT%H:%M:%SZ"),
            EVENT_LAT: (50.40 + np.arange(rows) % 10 * 0.01).astype(str),
            EVENT_LON: np.full(rows, "-104.6"),
            "query_id": np.arange(rows),
        }
    ).astype({EVENT_LAT: object, EVENT_LON: object})


def spoiled() -> pd.DataFrame:
    table = query_table()
    for row, (column, value, _, _) in BAD.items():
        table.loc[row, column] = value
    return table


def server_message(row: pd.DataFrame) -> str:
    with pytest.raises(RequestError) as refused:
        validate_queries(row)
    return refused.value.message


def test_every_bad_row_is_found_with_the_validators_reason():
    table = spoiled()
    valid, rejected, validation = split_inference_queries(table, {"max_rejected_fraction": 0.05})
    assert rejected[SOURCE_ROW].tolist() == sorted(BAD)
    assert rejected["reject_reason"].tolist() == [BAD[row][2] for row in sorted(BAD)]
    assert rejected["reject_column"].tolist() == [BAD[row][3] for row in sorted(BAD)]
    expected = [server_message(table.iloc[[row]]) for row in sorted(BAD)]
    assert rejected["reject_message"].tolist() == expected
    assert rejected["query_id"].tolist() == sorted(BAD)  # every input column kept
    assert valid[SOURCE_ROW].tolist() == sorted(set(range(ROWS)) - set(BAD))
    assert str(valid[EVENT_TIME].dtype) == "datetime64[ns, UTC]"
    assert validation["rows_rejected"] == len(BAD)
    assert accept_inference_queries(valid, validation) is valid


def test_too_many_bad_rows_fail_the_run():
    table = query_table(400)
    table.loc[::2, EVENT_LAT] = "999"  # half the rows
    valid, rejected, validation = split_inference_queries(table, {"max_rejected_fraction": 0.05})
    assert rejected[SOURCE_ROW].tolist() == list(range(0, 400, 2))
    assert set(rejected["reject_reason"]) == {"coordinates_out_of_range"}
    with pytest.raises(QueryRejectionError, match=r"200 of 400 query rows are invalid"):
        accept_inference_queries(valid, validation)


def test_a_table_without_a_query_column_is_refused_whole():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['courier_lon'\]"):
        split_inference_queries(
            query_table(5).drop(columns=EVENT_LON), {"max_rejected_fraction": 0}
        )


def test_an_empty_table_scores_nothing():
    valid, rejected, validation = split_inference_queries(
        query_table(0), {"max_rejected_fraction": 0.05}
    )
    assert valid.empty and rejected.empty and validation["rows_rejected"] == 0
    assert accept_inference_queries(valid, validation).empty


EVENTS = pd.DataFrame(
    {EVENT_TIME: pd.to_datetime(["2026-03-01T10:05:00Z", "2026-03-01T23:59:59Z"], utc=True)}
)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (None, "2026-03-02T00:00:00+00:00"),  # the hour after the last event
        ("2026-03-05T12:30:00+02:00", "2026-03-05T10:00:00+00:00"),  # its UTC hour
        ("2026-03-05 12:30", "2026-03-05T18:00:00+00:00"),  # naive = the source's local time
    ],
)
def test_forecast_window_start(start, expected):
    window = plan_forecast_window(EVENTS, {"horizon_hours": 6, "start": start}, "America/Regina")
    assert window["start"].isoformat() == expected
    assert window["horizon_hours"] == 6


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"horizon_hours": 0, "start": None}, "inference.horizon_hours must be a whole number"),
        ({"horizon_hours": 2.5, "start": None}, "inference.horizon_hours must be a whole number"),
        ({"horizon_hours": 6, "start": "soon"}, "inference.start must be an ISO 8601 time.*'soon'"),
    ],
)
def test_bad_forecast_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        plan_forecast_window(EVENTS, params)


def test_no_clean_events_and_no_start_is_an_error():
    with pytest.raises(ValueError, match="set inference.start"):
        plan_forecast_window(EVENTS.iloc[:0], {"horizon_hours": 6, "start": None})


def test_the_pipeline_gives_the_forecast_window_the_source_timezone():
    (node,) = create_pipeline().only_nodes("plan_forecast_window").nodes
    assert node.inputs[-1] == "params:data_processing.source_timezone"


def test_the_report_records_the_model_parameter_mismatch():
    mismatch = [{"parameter": "feature_engineering.h3_resolution", "model_value": 7}]
    window = {
        "start": pd.Timestamp("2026-03-02T00:00:00Z"),
        "horizon_hours": 1,
        "start_from": "parameter inference.start",
        "last_clean_event": None,
    }
    forecast = pd.DataFrame(
        {"h3_cell": ["87123"], "hour": [window["start"]], "predicted_busyness": [1.5]}
    )
    validation = {"rows": 0, "rows_rejected": 0, "rejected_by_reason_and_column": []}
    version = {
        "model_name": "geo-busyness",
        "version": "3",
        "chosen_by": "alias champion",
        "model_uri": "models:/geo-busyness/3",
        "run_id": "r",
        "tags": {},
    }
    args = (version, window, forecast, forecast.iloc[:0], validation)
    report = report_inference(*args, parameter_mismatch=mismatch)
    assert report["model_parameter_mismatch"] == mismatch
    assert report_inference(*args)["model_parameter_mismatch"] == []


def test_inference_checks_the_model_against_the_run_and_reports_it():
    pipeline = create_pipeline()
    (check,) = pipeline.only_nodes("check_inference_model_parameters").nodes
    assert check.inputs[2:] == [
        "params:feature_engineering.h3_resolution",
        "params:data_processing.source_timezone",
    ]
    (report,) = pipeline.only_nodes("report_inference").nodes
    assert check.outputs[0] in report.inputs
