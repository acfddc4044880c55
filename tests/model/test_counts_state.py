"""The counts state: a data-only file a server can pick up, checked on the way in and out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.counts_state import (
    CountsStateError,
    counts_state,
    read_counts_state,
    write_counts_state,
)
from geo_busyness.schemas import CELL, HOUR, TARGET


def _counts(hours: int = 3) -> pd.DataFrame:
    start = pd.Timestamp("2026-03-02 00:00", tz="UTC")
    return pd.DataFrame(
        {
            CELL: np.array([613, 614, 613][:hours], dtype="uint64"),
            HOUR: [start + pd.Timedelta(hours=h) for h in range(hours)],
            TARGET: [1.0, 2.0, 5.0][:hours],
        }
    )


def test_a_written_state_reads_back_whole(tmp_path) -> None:
    state = counts_state(_counts(), "2026-03-02 03:00", ["batch-1"])
    path = str(tmp_path / "state" / "counts_state.parquet")
    write_counts_state(state, path)
    back = read_counts_state(path)
    pd.testing.assert_frame_equal(back.counts, state.counts)
    assert back.end == pd.Timestamp("2026-03-02 03:00", tz="UTC")
    assert back.batches == ("batch-1",)
    assert not list((tmp_path / "state").glob("*.partial"))


def test_an_hour_at_the_end_is_refused_naming_the_row() -> None:
    with pytest.raises(CountsStateError, match="row 2: hour .* not before the state's end"):
        counts_state(_counts(), "2026-03-02 02:00")


def test_a_file_that_is_not_a_state_is_refused(tmp_path) -> None:
    plain = tmp_path / "plain.parquet"
    _counts().to_parquet(plain)
    with pytest.raises(CountsStateError, match="no counts-state metadata"):
        read_counts_state(str(plain))
    with pytest.raises(CountsStateError, match="No counts state at"):
        read_counts_state(str(tmp_path / "missing.parquet"))


def test_age_is_counted_from_the_end() -> None:
    state = counts_state(_counts(), "2026-03-02 03:00")
    assert state.age_seconds(pd.Timestamp("2026-03-02 04:30", tz="UTC")) == 5400.0
