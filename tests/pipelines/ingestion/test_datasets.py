"""The ingestion's storage on a real folder: a batch's rows replaced whole, nothing landed is
``{}``, an absent record is ``None``, the counts state written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from geo_busyness.model.counts_state import counts_state
from geo_busyness.pipelines.ingestion.datasets import (
    LOCAL_DATE,
    BatchFolderDataset,
    CountsStateDataset,
    EventHistoryDataset,
    NothingToPublish,
    OptionalJSONDataset,
    parse_partition_key,
)
from geo_busyness.schemas import CELL, HOUR, TARGET

PARQUET = {"type": "geo_busyness.datasets.ParquetDataset"}


def history(root: Path) -> EventHistoryDataset:
    return EventHistoryDataset(path=str(root), dataset=PARQUET, filename_suffix=".parquet")


def rows(dates: list[str], value: int) -> pd.DataFrame:
    return pd.DataFrame({LOCAL_DATE: dates, "x": np.full(len(dates), value)})


def stored(root: Path) -> dict[str, list[int]]:
    return {
        str(p.relative_to(root).with_suffix("")): pd.read_parquet(p)["x"].tolist()
        for p in sorted(root.rglob("*.parquet"))
    }


def test_a_saved_batch_replaces_its_rows_and_leaves_the_others(tmp_path: Path) -> None:
    dataset = history(tmp_path)
    dataset.save(
        {"a": rows(["2026-03-01", "2026-03-02", "2026-03-02"], 1), "b": rows(["2026-03-02"], 2)}
    )
    assert stored(tmp_path) == {
        "local_date=2026-03-01/batch=a": [1],
        "local_date=2026-03-02/batch=a": [1, 1],
        "local_date=2026-03-02/batch=b": [2],
    }
    dataset.save({"a": rows(["2026-03-03"], 3)})  # a correction on another day
    assert stored(tmp_path) == {
        "local_date=2026-03-02/batch=b": [2],
        "local_date=2026-03-03/batch=a": [3],
    }
    assert sorted(dataset.load()) == [
        "local_date=2026-03-02/batch=b",
        "local_date=2026-03-03/batch=a",
    ]
    assert "x" in dataset.load()["local_date=2026-03-03/batch=a"]()
    assert LOCAL_DATE not in dataset.load()["local_date=2026-03-03/batch=a"]()


def test_a_batch_name_that_cannot_name_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="Batch name '../x' cannot name a file"):
        history(tmp_path).save({"../x": rows(["2026-03-01"], 1)})


def test_nothing_stored_loads_as_empty(tmp_path: Path) -> None:
    folder = BatchFolderDataset(path=str(tmp_path / "landing"), dataset=PARQUET)
    assert folder.load() == {}
    assert history(tmp_path / "none").load() == {}
    assert OptionalJSONDataset(filepath=str(tmp_path / "record.json")).load() is None


def test_a_foreign_partition_key_is_named() -> None:
    assert parse_partition_key("local_date=2026-03-01/batch=a") == ("2026-03-01", "a")
    with pytest.raises(ValueError, match="'stray/file' is not named local_date="):
        parse_partition_key("stray/file")


def test_the_counts_state_round_trips_and_nothing_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "05_model_input" / "counts_state.parquet"
    dataset = CountsStateDataset(filepath=str(path))
    dataset.save(NothingToPublish("no batch yet"))
    assert not path.exists() and not dataset.exists()
    counts = pd.DataFrame(
        {
            CELL: np.array([7, 8], "uint64"),
            HOUR: pd.to_datetime(["2026-03-01 05:00"] * 2, utc=True),
            TARGET: [1.0, 2.0],
        }
    )
    dataset.save(counts_state(counts, "2026-03-01 06:00", ["a"]))
    back = dataset.load()
    assert dataset.exists() and back.batches == ("a",) and back.counts[TARGET].sum() == 3.0
