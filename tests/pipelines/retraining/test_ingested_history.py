"""Retraining on the ingested history: the raw history, the recent batch and every ingested
batch, each order once, cleaned again exactly as the history is."""

from __future__ import annotations

import pandas as pd
import pytest

from geo_busyness.pipelines.data_generation.nodes import generate_events
from geo_busyness.pipelines.data_processing.pipeline import create_pipeline as data_processing
from geo_busyness.pipelines.ingestion.datasets import EventHistoryDataset, OptionalJSONDataset
from geo_busyness.pipelines.retraining.nodes import combine_event_batches, combine_with_ingested
from geo_busyness.schemas import EVENT_TIME, REJECT_REASON
from tests.pipelines.ingestion.batches import ingest, land_week, tiny_parameters, tiny_week
from tests.pipelines.memory import run_in_memory


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """Weeks 0 and 1 after the tiny city's history ingested: the history and the record."""
    root = tmp_path_factory.mktemp("ingested")
    land_week(root, 0)
    land_week(root, 1)
    ingest(root)
    history = EventHistoryDataset(
        path=str(root / "03_primary" / "event_history"),
        dataset={"type": "geo_busyness.datasets.ParquetDataset"},
        filename_suffix=".parquet",
    )
    record = OptionalJSONDataset(filepath=str(root / "03_primary" / "ingestion_record.json"))
    return history.load(), record.load()


@pytest.fixture(scope="module")
def raw_history() -> pd.DataFrame:
    return generate_events(tiny_parameters()["data_generation"])[0]


def clean(raw: pd.DataFrame) -> dict:
    return run_in_memory(data_processing(), {"raw_events": raw}, tiny_parameters())


def test_every_ingested_batch_is_added_once(ingested, raw_history) -> None:
    """Week 0 is also the recent batch (the generator's recent_events.csv): its ingested copy
    is left out; week 1 is only in the ingested history."""
    history, record = ingested
    params = tiny_parameters()["data_processing"]
    recent = tiny_week(0)
    combined = combine_with_ingested(raw_history, recent, history, params)
    batches = record["batches"]
    week_1 = batches["synthetic_week_01"]["rows_clean"]
    assert len(combined) == len(raw_history) + len(recent) + week_1
    cleaned = clean(combined)
    alone = clean(raw_history)["clean_events"]
    expected = len(alone) + batches["synthetic_week_00"]["rows_clean"] + week_1
    assert len(cleaned["clean_events"]) == expected
    rejected = cleaned["rejected_events"][REJECT_REASON].astype(str).value_counts()
    before = clean(raw_history)["rejected_events"][REJECT_REASON].astype(str).value_counts()
    # no ingested row came back as a duplicate order or an unreadable time
    assert rejected.get("duplicate_order", 0) == before.get("duplicate_order", 0) + (
        batches["synthetic_week_00"]["rejected_by_reason"].get("duplicate_order", 0)
    )
    assert cleaned["clean_events"][EVENT_TIME].max() == pd.Timestamp(
        batches["synthetic_week_01"]["last_event_utc"]
    )


def test_ingested_times_read_back_as_the_same_instants(ingested) -> None:
    history, _ = ingested
    params = tiny_parameters()["data_processing"]
    stored = pd.concat([load() for load in history.values()], ignore_index=True)
    combined = combine_with_ingested(tiny_week(0).iloc[:0], None, history, params)  # no raw rows
    again = clean(combined)["clean_events"]
    assert len(again) == len(stored)
    pd.testing.assert_series_equal(
        again[EVENT_TIME].sort_values(ignore_index=True),
        stored[EVENT_TIME].sort_values(ignore_index=True).dt.as_unit("ns"),
        check_names=False,
        check_dtype=False,
    )


def test_without_ingestion_the_combination_is_todays(raw_history) -> None:
    recent = tiny_week(0)
    params = tiny_parameters()["data_processing"]
    pd.testing.assert_frame_equal(
        combine_with_ingested(raw_history, recent, {}, params),
        combine_event_batches(raw_history, recent),
    )
