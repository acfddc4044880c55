"""`kedro run --pipelines ingestion` in a project copy: landed synthetic weeks become the event
history, the record and the counts state (a real KedroSession, hooks included)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from geo_busyness.model.counts_state import read_counts_state
from geo_busyness.pipelines.data_generation.landing import land_synthetic_batch
from geo_busyness.testing import make_project_copy
from tests.conftest import run_kedro
from tests.pipelines.memory import TINY_GENERATION

TINY = {"data_generation": TINY_GENERATION}


@pytest.mark.slow
def test_kedro_run_ingests_landed_weeks_and_publishes_the_state(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project")
    land_synthetic_batch(project, 0, overrides=TINY)
    land_synthetic_batch(project, 1, scale=1.3, overrides=TINY)
    run_kedro(project, ["ingestion"], TINY)
    data = project / "data"
    record = json.loads((data / "03_primary" / "ingestion_record.json").read_text())
    assert sorted(record["last_run"]["appended"]) == ["synthetic_week_00", "synthetic_week_01"]
    stored = sum(
        len(pd.read_parquet(p)) for p in (data / "03_primary" / "event_history").rglob("*.parquet")
    )
    assert stored == record["history_rows"] == record["last_run"]["rows_added"] > 0
    state = read_counts_state(str(data / "05_model_input" / "counts_state.parquet"))
    assert state.counts["busyness"].sum() == stored
    assert state.batches == ("synthetic_week_00", "synthetic_week_01")
