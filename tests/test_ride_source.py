"""A ride-pickup source (only `Date/Time, Lat, Lon`, naive local times) through every pipeline.

The source is mapped by its column mapping alone (docs/new_source.md): `kedro run` (the default
training job), then inference and monitoring, in a scratch project copy. Monitoring runs with a
different H3 resolution than the model's, so its report must say so.
"""

from __future__ import annotations

import json
import pickle
from html import escape as html_escape
from pathlib import Path

import pandas as pd
import pytest
import yaml

from geo_busyness.pipelines.data_generation.nodes import generate_events, generate_recent_events
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME, QUERY_COLUMNS
from geo_busyness.testing import make_project_copy
from tests.conftest import QUICK_TRAINING, SMALL_GENERATION, run_kedro
from tests.pipelines.memory import project_parameters

pytestmark = pytest.mark.slow

RIDE_FORMAT = "%m/%d/%Y %H:%M:%S"
TIMEZONE = "America/Regina"  # UTC-6 all year
RIDE_MAPPING = {
    "data_processing": {
        "column_mapping": {
            EVENT_TIME: "Date/Time",
            EVENT_LAT: "Lat",
            EVENT_LON: "Lon",
            "courier_id": None,
            "order_number": None,
            "order_created_timestamp": None,
            "restaurant_lat": None,
            "restaurant_lon": None,
        },
        "source_timezone": TIMEZONE,
        "timestamp_format": RIDE_FORMAT,
    }
}
#: The restaurant features a ride table cannot give.
RESTAURANT_FEATURES = {"dist_to_restaurant", "Hdist_to_restaurant", "restaurants_per_index"}
#: Naive local times: the data's end (4 weeks after 2026-01-05 00:00) and the first forecast hour.
END, FORECAST_START = "2026-02-02 00:00", "2026-02-02 09:00"


def as_rides(events: pd.DataFrame) -> pd.DataFrame:
    """Courier pings as ride pickups: `Date/Time` (naive local, US format), `Lat`, `Lon`.

    Timestamps the generator spoiled stay as they were (they are rejected as unparsable).
    """
    parsed = pd.to_datetime(events[EVENT_TIME], format="ISO8601", errors="coerce")
    text = parsed.dt.strftime(RIDE_FORMAT).where(parsed.notna(), events[EVENT_TIME])
    return pd.DataFrame({"Date/Time": text, "Lat": events[EVENT_LAT], "Lon": events[EVENT_LON]})


def write_ride_project(project: Path) -> None:
    """Small generated history, recent week and queries, rewritten to the ride schema."""
    city = project_parameters({"data_generation": SMALL_GENERATION})["data_generation"]
    history, _labels, _summary = generate_events(city)
    recent, queries = generate_recent_events(city, TIMEZONE)
    raw = project / "data" / "01_raw"
    as_rides(history).to_csv(raw / "courier_events.csv", index=False)
    as_rides(recent).to_csv(raw / "recent_events.csv", index=False)
    queries[list(QUERY_COLUMNS)].to_csv(raw / "inference_queries.csv", index=False)
    mapping = project / "conf" / "local" / "parameters_data_processing.yml"
    mapping.write_text(yaml.safe_dump(RIDE_MAPPING))


def read_json(project: Path, path: str) -> dict:
    return json.loads((project / "data" / path).read_text())


@pytest.fixture(scope="module")
def ride_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy trained on rides, then forecast and monitored."""
    project = make_project_copy(tmp_path_factory.mktemp("rides") / "project")
    write_ride_project(project)
    training = {
        **QUICK_TRAINING,
        "feature_engineering": {**QUICK_TRAINING["feature_engineering"], "end": END},
    }
    run_kedro(project, ["__default__"], training)
    run_kedro(project, ["inference"], {"inference": {"horizon_hours": 6, "start": FORECAST_START}})
    run_kedro(project, ["monitoring"], {"feature_engineering": {"h3_resolution": 8}})
    return project


def test_training_on_rides_leaves_out_the_restaurant_features(ride_project: Path) -> None:
    with (ride_project / "data" / "06_models" / "busyness_features.pkl").open("rb") as file:
        features = pickle.load(file)  # noqa: S301 - written by this test's own run
    assert set(features.unavailable_features_) == RESTAURANT_FEATURES
    assert RESTAURANT_FEATURES.isdisjoint(features.feature_names_)
    report = read_json(ride_project, "08_reporting/evaluation_report.json")
    assert report  # the default run wrote its evaluation report
    # A naive feature_engineering.end is the source's local time.
    windows = read_json(ride_project, "03_primary/time_windows.json")
    assert pd.Timestamp(windows["test_end"]) == pd.Timestamp(END).tz_localize(TIMEZONE)


def test_inference_on_rides_forecasts_from_a_local_start(ride_project: Path) -> None:
    forecast = pd.read_parquet(
        ride_project / "data" / "07_model_output" / "busyness_forecast.parquet"
    )
    assert len(forecast) and forecast["predicted_busyness"].notna().all()
    report = read_json(ride_project, "08_reporting/inference/inference_report.json")
    start = pd.Timestamp(FORECAST_START).tz_localize(TIMEZONE).tz_convert("UTC")
    assert report["forecast"]["start_utc"] == start.isoformat()
    assert report["queries"]["scored"] > 0
    assert report["model_parameter_mismatch"] == []


def test_monitoring_on_rides_reports_the_resolution_mismatch(ride_project: Path) -> None:
    report = read_json(ride_project, "08_reporting/monitoring/monitoring_report.json")
    (mismatch,) = report["model_parameter_mismatch"]
    assert mismatch["parameter"] == "feature_engineering.h3_resolution"
    assert (mismatch["model_value"], mismatch["run_value"]) == (7, 8)
    assert report["event_features"]["Hdist_to_restaurant"]["skipped"]
    html = ride_project / "data" / "08_reporting" / "monitoring" / "monitoring_report.html"
    assert html_escape(mismatch["message"]) in html.read_text()
