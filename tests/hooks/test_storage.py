"""StorageErrorHook: a missing input is one sentence naming the dataset and its path."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DataCatalog, DatasetError

from geo_busyness.hooks.storage import StorageError, explain_storage_failure
from tests.conftest import make_project_copy, run_kedro


@pytest.mark.slow  # a real KedroSession run
def test_missing_raw_input_names_dataset_and_path(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project")
    with pytest.raises(StorageError) as caught:
        run_kedro(project, ["data_processing"])
    raw_path = project / "data" / "01_raw" / "courier_events.csv"
    assert str(caught.value).startswith(f"Could not load dataset 'raw_events' at {raw_path}")
    assert "nothing is stored there" in str(caught.value)


def test_a_cached_dataset_is_found_by_the_path_of_the_dataset_it_wraps(tmp_path: Path) -> None:
    """clean_events is the project's CachedDataset around a Parquet file: it describes itself as
    that file, so its faults name the file."""
    path = tmp_path / "clean_events.parquet"
    catalog = DataCatalog.from_config(
        {
            "clean_events": {
                "type": "geo_busyness.datasets.CachedDataset",
                "dataset": {"type": "geo_busyness.datasets.ParquetDataset", "filepath": str(path)},
            }
        }
    )
    with pytest.raises(DatasetError) as caught:
        catalog.load("clean_events")
    message = explain_storage_failure(caught.value, catalog)
    assert message is not None
    assert message.startswith(f"Could not load dataset 'clean_events' at {path}")


def test_a_missing_shadow_log_names_what_writes_it_not_a_pipeline(tmp_path: Path) -> None:
    """No pipeline writes the shadow log (``kedro serve --shadow`` does): the message says so
    instead of "run the pipeline that writes it first"."""
    catalog = DataCatalog.from_config(
        {
            name: {"type": "json.JSONDataset", "filepath": str(tmp_path / f"{name}.json")}
            for name in ("shadow_log", "deployment_record")
        }
    )
    messages = {}
    for name in ("shadow_log", "deployment_record"):
        with pytest.raises(DatasetError) as caught:
            catalog.load(name)
        messages[name] = explain_storage_failure(caught.value, catalog)
    assert "kedro serve --shadow" in messages["shadow_log"]
    assert "run the pipeline that writes it first" not in messages["shadow_log"]
    assert "run the pipeline that writes it first" in messages["deployment_record"]
