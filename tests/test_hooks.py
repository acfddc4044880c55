"""Project hooks: a missing input is one sentence naming the dataset and its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_busyness.hooks import StorageError
from tests.conftest import make_project_copy, run_kedro


def test_missing_raw_input_names_dataset_and_path(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project")
    with pytest.raises(StorageError) as caught:
        run_kedro(project, ["data_processing"])
    raw_path = project / "data" / "01_raw" / "courier_events.csv"
    assert str(caught.value).startswith(f"Could not load dataset 'raw_events' at {raw_path}")
    assert "nothing is stored there" in str(caught.value)
