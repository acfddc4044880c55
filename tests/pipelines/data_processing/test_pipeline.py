"""data_processing through real Kedro sessions: outputs, quarantine, the gate and the validators."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation import DataValidationError

from geo_busyness.pipelines.data_generation.nodes import FAULT_TO_REASON
from geo_busyness.pipelines.data_processing.nodes import (
    DataQualityError,
    map_to_canonical,
    split_clean_and_rejected,
)
from geo_busyness.schemas import CANONICAL_COLUMNS
from tests.conftest import SMALL_GENERATION, inside, make_project_copy, run_kedro
from tests.pipelines.data_processing.conftest import RIDE_PARAMS, RIDE_ROWS, make_ride_table

pytestmark = pytest.mark.slow

RAW_CSV = Path("data/01_raw/courier_events.csv")
FAULT_LABELS = Path("data/01_raw/courier_events_fault_labels.parquet")
CLEAN = Path("data/03_primary/clean_events.parquet")
QUARANTINE = Path("data/02_intermediate/quarantine/rejected_events.parquet")
REPORT = Path("data/08_reporting/data_quality_report.json")


# ---------- the generated sample, 2% dirty ----------


def test_outputs_exist_and_the_canonical_table_stays_in_memory(processed_project):
    for path in (CLEAN, QUARANTINE, REPORT):
        assert (processed_project / path).is_file(), path
    assert not any((processed_project / "data/02_intermediate").glob("canonical_events*"))


def test_quarantine_holds_exactly_the_injected_rows_with_the_right_reasons(processed_project):
    labels = pd.read_parquet(processed_project / FAULT_LABELS)
    rejected = pd.read_parquet(processed_project / QUARANTINE)
    assert len(labels) > 0
    assert set(rejected["source_row"]) == set(labels["source_row"])
    assert len(rejected) == len(labels)
    paired = labels.merge(
        rejected[["source_row", "reject_reason"]], on="source_row", validate="1:1"
    )
    expected = paired["fault"].map(FAULT_TO_REASON)
    assert expected.notna().all()
    wrong = paired[expected != paired["reject_reason"].astype(str)]
    assert wrong.empty, wrong.head(10).to_string()


def test_clean_events_are_every_other_row(processed_project):
    raw = pd.read_csv(processed_project / RAW_CSV)
    clean = pd.read_parquet(processed_project / CLEAN)
    rejected = pd.read_parquet(processed_project / QUARANTINE)
    summary = json.loads(
        (processed_project / "data/01_raw/courier_events_summary.json").read_text()
    )
    assert len(clean) == summary["clean_rows"]
    assert len(clean) + len(rejected) == len(raw)
    assert set(clean["source_row"]).isdisjoint(rejected["source_row"])
    assert str(clean["courier_location_timestamp"].dt.tz) == "UTC"
    assert clean["order_number"].is_unique
    assert clean["restaurant_id"].notna().all()


def test_two_percent_dirty_passes_with_a_report(processed_project):
    report = json.loads((processed_project / REPORT).read_text())
    rejected = pd.read_parquet(processed_project / QUARANTINE)
    assert report["rows_rejected"] == len(rejected)
    assert report["rejected_fraction"] == pytest.approx(
        SMALL_GENERATION["dirty_fraction"], abs=0.002
    )
    assert report["rejected_fraction"] <= report["max_rejected_fraction"] == 0.05
    assert report["rejected_by_reason"] == {
        str(reason): int(n) for reason, n in rejected["reject_reason"].value_counts().items() if n
    }
    assert set(report["rejected_by_reason"]) == set(FAULT_TO_REASON.values())


# ---------- 100% garbage ----------


def garbage_table() -> pd.DataFrame:
    """Reference-schema rows that are every one of them wrong, in several ways."""
    good = {
        "courier_id": 1001,
        "courier_location_timestamp": "2026-01-05T10:30:00",
        "courier_lat": 50.45,
        "courier_lon": -104.6,
        "order_created_timestamp": "2026-01-05T10:00:00",
        "restaurant_lat": 50.45,
        "restaurant_lon": -104.6,
    }
    bad = (
        [{"courier_lat": 190.0}] * 5
        + [{"courier_location_timestamp": "not a timestamp"}] * 3
        + [{"courier_lon": None}] * 2
        + [{"order_created_timestamp": "2026-01-05T11:00:00"}]
    )
    return pd.DataFrame([{**good, "order_number": i, **row} for i, row in enumerate(bad)])


def test_all_garbage_fails_the_run_keeps_the_last_clean_events_and_writes_the_quarantine(
    processed_project, tmp_path
):
    project = make_project_copy(tmp_path / "garbage")
    previous = project / CLEAN
    shutil.copy(processed_project / CLEAN, previous)
    before = previous.read_bytes()
    garbage_table().to_csv(project / RAW_CSV, index=False)

    with pytest.raises(DataQualityError) as failure:
        run_kedro(project, ["data_processing"])

    message = str(failure.value)
    assert "Rejected 11 of 11 rows (100.0%)" in message
    assert "coordinates_out_of_range in courier_lat: 5" in message
    assert "unparsable_timestamp in courier_location_timestamp: 3" in message
    assert "missing_value in courier_lon: 2" in message
    assert previous.read_bytes() == before
    rejected = pd.read_parquet(project / QUARANTINE)
    assert sorted(rejected["source_row"]) == list(range(11))
    assert rejected["reject_reason"].astype(str).value_counts().to_dict() == {
        "coordinates_out_of_range": 5,
        "unparsable_timestamp": 3,
        "missing_value": 2,
        "ping_before_order_creation": 1,
    }


# ---------- another source, mapped by runtime parameters ----------


@pytest.fixture(scope="module")
def ride_run(tmp_path_factory) -> dict:
    """Ride pickups through a real data_processing run, mapped by runtime parameters only."""
    project = make_project_copy(tmp_path_factory.mktemp("rides"))
    rides = make_ride_table()
    rides.to_csv(project / RAW_CSV, index=False)
    run_kedro(project, ["data_processing"], {"data_processing": RIDE_PARAMS})
    active = sys.modules["mlflow"].active_run()
    return {"project": project, "rides": rides, "mlflow_run_left_active": active}


def test_ride_pickups_run_through_kedro_with_a_runtime_column_mapping(ride_run):
    project, rides = ride_run["project"], ride_run["rides"]
    clean = pd.read_parquet(project / CLEAN)
    assert len(clean) == RIDE_ROWS
    assert clean["courier_location_timestamp"].iloc[0] == pd.Timestamp("2014-04-01T04:11:00Z")
    assert clean["courier_lat"].tolist() == rides["Lat"].tolist()
    assert clean["courier_lon"].tolist() == rides["Lon"].tolist()
    assert clean["courier_id"].isna().all()
    assert clean["restaurant_id"].isna().all()
    assert pd.read_parquet(project / QUARANTINE).empty
    assert json.loads((project / REPORT).read_text())["rows_clean"] == RIDE_ROWS


def test_a_successful_session_leaves_no_mlflow_run_active(ride_run):
    """conf/base/mlflow.yml keeps tracking.run.nested False: kedro-mlflow 2.0.3 otherwise leaks
    the run into the next session of the same process (a notebook, a test)."""
    assert ride_run["mlflow_run_left_active"] is None


# ---------- the catalog's validators ----------


@pytest.fixture
def catalog(tmp_path):
    project = make_project_copy(tmp_path / "catalog")
    with inside(project):
        bootstrap_project(project)
        with KedroSession.create(project_path=project) as session:
            yield session.load_context().catalog, project


def valid_clean_events() -> pd.DataFrame:
    stamps = (
        pd.to_datetime(["2026-01-05 16:30", "2026-01-05 17:00"]).tz_localize("UTC").as_unit("ns")
    )
    return pd.DataFrame(
        {
            "source_row": [0, 1],
            "courier_id": [1, 2],
            "order_number": [1, 2],
            "courier_location_timestamp": stamps,
            "courier_lat": [50.45, 50.46],
            "courier_lon": [-104.6, -104.61],
            "order_created_timestamp": stamps - pd.Timedelta(minutes=20),
            "restaurant_lat": [50.45, 50.46],
            "restaurant_lon": [-104.6, -104.61],
            "restaurant_id": pd.array([1, 2], dtype="Int64"),
        }
    )


def test_clean_events_validator_is_attached(catalog):
    catalog, project = catalog
    bad = valid_clean_events().assign(courier_lat=[200.0, 50.46])
    with pytest.raises(DataValidationError):
        catalog.save("clean_events", bad)
    assert not (project / CLEAN).exists()
    catalog.save("clean_events", valid_clean_events())
    assert len(pd.read_parquet(project / CLEAN)) == 2


def test_clean_events_stay_in_memory_after_saving_and_equal_their_file(processed_project, catalog):
    """A run of processing and features together takes clean_events from memory: it must be
    exactly what a later run reads back from the file."""
    catalog, project = catalog
    params = catalog.load("params:data_processing")
    raw = pd.read_csv(processed_project / RAW_CSV)
    clean, _ = split_clean_and_rejected(map_to_canonical(raw, params["column_mapping"]), params)
    catalog.save("clean_events", clean)
    assert catalog.load("clean_events") is clean
    pd.testing.assert_frame_equal(pd.read_parquet(project / CLEAN), clean)
    catalog.release("clean_events")  # what the runner does after the last node that reads it
    reloaded = catalog.load("clean_events")
    assert reloaded is not clean
    pd.testing.assert_frame_equal(reloaded, clean)


def test_canonical_events_validator_is_attached(catalog):
    catalog, project = catalog
    canonical = pd.DataFrame(
        {"source_row": [0, 1], **{col: [None, None] for col in CANONICAL_COLUMNS}}
    )
    canonical[["courier_lat", "courier_lon", "restaurant_lat", "restaurant_lon"]] = 1.0
    with pytest.raises(DataValidationError):
        catalog.save("canonical_events", canonical.assign(source_row=[3, 3]))
    catalog.save("canonical_events", canonical)
