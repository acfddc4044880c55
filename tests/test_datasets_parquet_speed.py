"""ParquetDataset's dictionary choice and Arrow pool: faster writes and reads, same values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geo_busyness.datasets import (
    DICTIONARY_SAMPLE_ROWS,
    ParquetDataset,
    dictionary_columns,
    prefer_jemalloc_pool,
)


def _events(n: int = 2_000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "source_row": np.arange(n, dtype=np.int64),  # all distinct
            "courier_id": rng.integers(0, 20, n),  # repeats
            "lat": rng.uniform(50, 51, n),  # all distinct
            "when": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
            "venue": pd.array(rng.integers(0, 5, n), dtype="Int64"),
        }
    )


def _dictionary_encoded(path: Path) -> dict[str, bool]:
    """Per column of a Parquet file: whether its first row group has a dictionary page."""
    group = pq.ParquetFile(path).metadata.row_group(0)
    return {
        group.column(i).path_in_schema: group.column(i).has_dictionary_page
        for i in range(group.num_columns)
    }


def test_dictionary_columns_are_the_repeating_ones() -> None:
    assert dictionary_columns(_events()) == ["courier_id", "venue"]


def test_dictionary_columns_judge_only_the_first_rows() -> None:
    n = DICTIONARY_SAMPLE_ROWS + 10
    late_repeats = pd.DataFrame({"x": np.r_[np.arange(DICTIONARY_SAMPLE_ROWS), np.zeros(10)]})
    assert len(late_repeats) == n
    assert dictionary_columns(late_repeats) == []


def test_dictionary_columns_leave_unusual_tables_to_arrow() -> None:
    assert dictionary_columns(pd.DataFrame({0: [1, 1], 1: [2, 2]})) is None
    assert dictionary_columns(pd.DataFrame({"x": [[1], [1]]})) is None


def test_saved_values_are_the_same_and_only_repeating_columns_get_a_dictionary(
    tmp_path: Path,
) -> None:
    events = _events()
    target = tmp_path / "events.parquet"
    ParquetDataset(filepath=str(target)).save(events)
    pd.testing.assert_frame_equal(pd.read_parquet(target), events)
    assert _dictionary_encoded(target) == {
        "source_row": False,
        "courier_id": True,
        "lat": False,
        "when": False,
        "venue": True,
    }


def test_save_args_that_choose_dictionaries_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "events.parquet"
    dataset = ParquetDataset(filepath=str(target), save_args={"use_dictionary": True})
    dataset.save(_events())
    assert all(_dictionary_encoded(target).values())
    assert dataset._save_args == {"use_dictionary": True}  # noqa: SLF001 - not changed by a save


def test_arrow_uses_jemalloc_after_a_load_unless_the_environment_chooses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this Arrow build has no jemalloc")
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.system_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        prefer_jemalloc_pool()
        assert pa.default_memory_pool().backend_name == "system"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        target = tmp_path / "events.parquet"
        _events().to_parquet(target)
        ParquetDataset(filepath=str(target)).load()
        assert pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)


def test_raw_tables_read_column_by_column_are_the_same(tmp_path: Path) -> None:
    """The load_args the benchmark's raw_events uses give the same frame."""
    events = _events()
    target = tmp_path / "events.parquet"
    events.to_parquet(target)
    load_args = {"to_pandas_kwargs": {"split_blocks": True, "self_destruct": True}}
    loaded = ParquetDataset(filepath=str(target), load_args=load_args).load()
    pd.testing.assert_frame_equal(loaded, events)
