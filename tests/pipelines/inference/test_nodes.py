"""Inference nodes: splitting query rows, the forecast window, and forecasting from the latest
hour with the serving tests' small model told later counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.explain import explain_busyness
from geo_busyness.model.geo import cell_centres, cell_ids, h3_cells
from geo_busyness.model.predict import predict_cell_hours
from geo_busyness.pipelines.inference.nodes import (
    QueryRejectionError,
    accept_inference_queries,
    describe_explanations,
    extend_with_recent_counts,
    forecast_known_cells,
    plan_forecast_window,
    report_inference,
    score_inference_queries,
    split_inference_queries,
)
from geo_busyness.pipelines.inference.pipeline import create_pipeline
from geo_busyness.schemas import (
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    EXPLAIN_COLUMNS,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    PREDICTION,
    SOURCE_ROW,
    contribution_columns,
)
from geo_busyness.serving.requests import RequestError, validate_queries
from tests.serving.model_fixture import END, START, WEEKS, fit_model, synthetic_events

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


# ---------------------------------------------------------------- forecasting from the latest hour
def later_events(days: int = 2) -> pd.DataFrame:
    """Events of the fixture's city (same seed: same venues) in the ``days`` after the model's
    history, at the history's rate."""
    week = synthetic_events(2000, seed=0, weeks=1)
    week = week[week[EVENT_TIME] < START + pd.Timedelta(days=days)]
    return week.assign(**{EVENT_TIME: week[EVENT_TIME] + pd.Timedelta(weeks=WEEKS)})


@pytest.fixture(scope="module")
def extended_run():
    """The fixture model told two more days of events, and its forecast from the latest hour."""
    model = fit_model()
    history, later = synthetic_events(), later_events()
    clean = pd.concat([history, later], ignore_index=True)
    window = plan_forecast_window(clean, {"horizon_hours": 30, "start": None})
    forecaster, extension = extend_with_recent_counts(model, clean, window)
    forecast = forecast_known_cells(forecaster, VERSION, window)
    return model, later, window, forecaster, extension, forecast


VERSION = {
    "model_name": "geo-busyness",
    "version": "3",
    "chosen_by": "alias champion",
    "model_uri": "models:/geo-busyness/3",
    "run_id": "r",
    "tags": {},
}


def test_the_forecast_starts_from_the_latest_hour(extended_run):
    model, later, window, forecaster, extension, forecast = extended_run
    start = window["start"]
    assert start == later[EVENT_TIME].max().floor("h") + pd.Timedelta(hours=1)
    assert model.origin == END  # the artifact is untouched
    assert forecaster.origin == start
    assert extension["model_origin_utc"] == END.isoformat()
    assert extension["origin_utc"] == start.isoformat()
    assert extension["hours_added"] == (start - END) // pd.Timedelta(hours=1)
    assert extension["events_added"] == len(later)
    assert extension["hours_after_last_clean_event"] == 0
    # the added hours hold exactly the later events' counts, the known ones are unchanged
    assert forecaster.history_.counts[:, model.history_.hours :].sum() == pytest.approx(
        np.isin(
            h3_cells(later[EVENT_LAT], later[EVENT_LON], model.resolution), model.history_.cells
        ).sum()
    )
    np.testing.assert_array_equal(
        forecaster.history_.counts[:, : model.history_.hours], model.history_.counts
    )
    hours = (forecast[HOUR] - start) // pd.Timedelta(hours=1)
    assert (forecast[HORIZON] == hours + 1).all()
    assert len(forecast) == len(model.history_.cells) * 30
    assert list(forecast.columns) == [
        H3_CELL,
        HOUR,
        PREDICTION,
        *INTERVAL_COLUMNS,
        HORIZON,
        "model_name",
        "model_version",
    ]


def test_the_nowcast_uses_the_latest_counts(extended_run):
    """The artifact alone forecasts those hours two days ahead; the pipeline one hour ahead."""
    model, _, window, _, _, forecast = extended_run
    first = forecast[forecast[HORIZON] == 1]
    from_artifact = predict_cell_hours(model, cell_ids(first[H3_CELL]), first[HOUR])
    assert (from_artifact[HORIZON] > 24).all()
    assert not np.allclose(from_artifact[PREDICTION], first[PREDICTION])


def test_query_rows_are_scored_on_the_extended_model(extended_run):
    _, later, window, forecaster, _, forecast = extended_run
    centres = cell_centres(cell_ids(forecast[H3_CELL].head(40)))
    queries = pd.DataFrame(
        {
            SOURCE_ROW: np.arange(40),
            EVENT_TIME: forecast[HOUR].head(40).to_numpy(),
            EVENT_LAT: centres[0],
            EVENT_LON: centres[1],
        }
    )
    scored = score_inference_queries(forecaster, VERSION, queries)
    for column in (PREDICTION, *INTERVAL_COLUMNS, HORIZON):
        np.testing.assert_array_equal(scored[column], forecast[column].head(40))


def test_the_report_names_the_origin_and_the_products(extended_run):
    _, _, window, _, extension, forecast = extended_run
    validation = {"rows": 0, "rows_rejected": 0, "rejected_by_reason_and_column": []}
    report = report_inference(
        VERSION, window, forecast, forecast.iloc[:0], validation, extension=extension
    )
    assert report["forecast"]["origin"] == extension
    products = report["forecast"]["products"]
    cells = forecast[H3_CELL].nunique()
    assert products["served"] == ["nowcast", "day_ahead", "week_ahead"]
    assert products["nowcast"] == {"rows": 3 * cells, "hours": 3, "horizon_hours": "1-3"}
    assert products["day_ahead"] == {"rows": 21 * cells, "hours": 21, "horizon_hours": "4-24"}
    assert products["week_ahead"] == {"rows": 6 * cells, "hours": 6, "horizon_hours": "25-168"}
    assert report["forecast"]["p90_total"] >= report["forecast"]["p10_total"]


def test_a_start_before_the_models_origin_adds_nothing(extended_run):
    model = extended_run[0]
    start = END - pd.Timedelta(hours=5)
    window = {
        "start": start,
        "horizon_hours": 8,
        "start_from": "parameter inference.start",
        "last_clean_event": END - pd.Timedelta(hours=1),
    }
    forecaster, extension = extend_with_recent_counts(model, synthetic_events(), window)
    assert forecaster.origin == END and extension["hours_added"] == 0
    forecast = forecast_known_cells(forecaster, VERSION, window)
    validation = {"rows": 0, "rows_rejected": 0, "rejected_by_reason_and_column": []}
    report = report_inference(
        VERSION, window, forecast, forecast.iloc[:0], validation, extension=extension
    )
    products = report["forecast"]["products"]
    assert products["served"] == ["known", "nowcast"]
    assert products["known"]["hours"] == 5 and products["nowcast"]["hours"] == 3


def test_hours_after_the_last_clean_event_are_counted_as_empty(extended_run):
    model, later = extended_run[0], extended_run[1]
    clean = pd.concat([synthetic_events(), later], ignore_index=True)
    last = later[EVENT_TIME].max()
    start = last.floor("h") + pd.Timedelta(hours=6)
    window = {
        "start": start,
        "horizon_hours": 3,
        "start_from": "parameter inference.start",
        "last_clean_event": last,
    }
    forecaster, extension = extend_with_recent_counts(model, clean, window)
    assert forecaster.origin == start
    assert extension["hours_after_last_clean_event"] == 5


def test_explain_top_k_adds_the_contribution_columns(extended_run):
    """inference.explain_top_k > 0: each scored row and forecast row gets its top SHAP
    contributions, exactly what the server answers to "explain"; 0 adds nothing."""
    _, _, window, forecaster, _, forecast = extended_run
    centres = cell_centres(cell_ids(forecast[H3_CELL].head(20)))
    queries = pd.DataFrame(
        {
            SOURCE_ROW: np.arange(20),
            EVENT_TIME: forecast[HOUR].head(20).to_numpy(),
            EVENT_LAT: centres[0],
            EVENT_LON: centres[1],
        }
    )
    plain = score_inference_queries(forecaster, VERSION, queries)
    scored = score_inference_queries(forecaster, VERSION, queries, 2)
    explanation = explain_busyness(forecaster, queries[[EVENT_TIME, EVENT_LAT, EVENT_LON]], 2)
    columns = [*EXPLAIN_COLUMNS, *contribution_columns(1), *contribution_columns(2)]
    assert not set(columns) & set(plain.columns)
    pd.testing.assert_frame_equal(scored[columns], explanation[columns])
    pd.testing.assert_frame_equal(scored[plain.columns], plain)
    short = {**window, "horizon_hours": 2}
    explained_forecast = forecast_known_cells(forecaster, VERSION, short, 1)
    assert explained_forecast["shap_feature_1"].notna().all()
    assert (explained_forecast["shap_method"] == "gradient_boosting").all()
    first = explained_forecast.head(20)
    np.testing.assert_array_equal(
        first["shap_contribution_1"], scored["shap_contribution_1"].head(20)
    )


@pytest.mark.parametrize("value", [-1, 1.5, True, "3", None])
def test_a_bad_explain_top_k_is_named(extended_run, value):
    _, _, window, forecaster, _, _ = extended_run
    with pytest.raises(ValueError, match="inference.explain_top_k must be a whole number >= 0"):
        forecast_known_cells(forecaster, VERSION, window, value)


def test_the_report_says_what_the_explanations_are(extended_run):
    _, _, window, forecaster, extension, forecast = extended_run
    validation = {"rows": 0, "rows_rejected": 0, "rejected_by_reason_and_column": []}
    off = describe_explanations(forecaster, 0)
    assert off["top_k"] == 0 and "explain_top_k: 0" in off["statement"]
    on = describe_explanations(forecaster, 3)
    assert on["top_k"] == 3 and on["method"] == "gradient_boosting"
    assert on["scale"] == "log ratio to the cell's seasonal profile"
    report = report_inference(
        VERSION, window, forecast, forecast.iloc[:0], validation, explanations=on
    )
    assert report["explanations"] == on
    assert report_inference(VERSION, window, forecast, forecast.iloc[:0], validation)[
        "explanations"
    ] == {"top_k": 0}


# ---------------------------------------------------------------- no query rows
@pytest.mark.parametrize(("queries", "why"), [(None, "absent"), (query_table(0), "empty")])
def test_no_query_file_scores_nothing_and_says_so(extended_run, caplog, queries, why):
    """None is what the optional dataset loads when nothing is stored at its path."""
    _, _, window, forecaster, extension, forecast = extended_run
    with caplog.at_level("INFO"):
        valid, rejected, validation = split_inference_queries(
            queries, {"max_rejected_fraction": 0.05}
        )
    (line,) = [r.getMessage() for r in caplog.records if "No query rows" in r.getMessage()]
    assert f"inference_queries is {why}" in line and "forecast is written" in line
    scored = score_inference_queries(
        forecaster, VERSION, accept_inference_queries(valid, validation)
    )
    assert scored.empty and rejected.empty
    report = report_inference(VERSION, window, forecast, scored, validation, extension=extension)
    assert report["queries"]["rows"] == 0 and report["queries"]["scored"] == 0
    assert "none scored" in report["queries"]["note"]
    assert report["forecast"]["rows"] == len(forecast) > 0


def test_query_rows_in_the_source_s_names_are_told_the_server_s_names():
    mapping = {"courier_location_timestamp": "start_time", "courier_lat": "latitude"}
    table = query_table(3).rename(columns={EVENT_TIME: "start_time", EVENT_LAT: "latitude"})
    with pytest.raises(ValueError, match="column_mapping is not applied") as refused:
        split_inference_queries(table, {"max_rejected_fraction": 0}, mapping)
    message = str(refused.value)
    assert "'start_time' -> 'courier_location_timestamp'" in message
    assert "'latitude' -> 'courier_lat'" in message and "naive = UTC" in message


def test_the_pipeline_gives_the_query_split_the_column_mapping():
    (node,) = create_pipeline().only_nodes("split_inference_queries").nodes
    assert node.inputs == [
        "inference_queries",
        "params:inference",
        "params:data_processing.column_mapping",
        "inference_model",  # its service area: the server's area check
    ]
