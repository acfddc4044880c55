"""The cleaning node's faster row takes and duplicate-order check give what pandas gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from geo_busyness.pipelines.data_processing.nodes import _repeated, take_rows


def _chunked_text(values: list[str | None], chunk: int) -> pd.Series:
    """Arrow-backed text in chunks of ``chunk`` values (as a Parquet read gives it)."""
    parts = [
        pa.array(values[i : i + chunk], pa.large_string()) for i in range(0, len(values), chunk)
    ]
    return pd.Series(pd.array(pa.chunked_array(parts), dtype="str"))


def _frame(n: int = 50) -> pd.DataFrame:
    texts = [None if i % 7 == 0 else f"2026-01-01T00:00:{i % 60:02d}" for i in range(n)]
    return pd.DataFrame(
        {
            "source_row": np.arange(n, dtype=np.int64),
            "text": _chunked_text(texts, chunk=8),
            "arrow_text": pd.array(texts, dtype=pd.ArrowDtype(pa.large_string())),
            "lat": np.linspace(50, 51, n),
            "nothing": np.full(n, None, dtype=object),
            "nullable": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
            "when": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "reason": pd.Categorical(["a", "b"] * (n // 2)),
        }
    )


@pytest.mark.parametrize(
    "rows",
    [
        np.array([0, 3, 7, 8, 9, 15, 16, 31, 49]),  # across chunk edges, both ends
        np.arange(8, 16),  # one whole chunk
        np.array([], dtype=np.int64),
        np.arange(50),
    ],
)
def test_take_rows_is_pandas_take_with_a_fresh_index(rows: np.ndarray) -> None:
    frame = _frame()
    expected = frame.take(rows).reset_index(drop=True)
    taken = take_rows(frame, rows)
    pd.testing.assert_frame_equal(taken, expected)
    assert list(taken.dtypes) == list(frame.dtypes)


def test_take_rows_of_a_frame_with_one_chunk_per_column() -> None:
    frame = pd.DataFrame({"text": pd.array(["x", None, "z"], dtype="str")})
    pd.testing.assert_frame_equal(
        take_rows(frame, np.array([0, 2])), frame.take([0, 2]).reset_index(drop=True)
    )


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(np.array([5, 3, 5, 9, 3, 3, 11, 5], dtype=np.int64)),  # counted in a table
        pd.Series(np.array([1, 10**15, 1, -(10**15), 10**15], dtype=np.int64)),  # too sparse
        pd.Series(pd.array([1, None, 1, None, 2], dtype="Int64")),  # nullable: pandas' own
        pd.Series(["a", "b", "a", None, None], dtype=object),
        pd.Series(np.array([], dtype=np.int64)),
        pd.Series(np.arange(1000, dtype=np.int64)),  # no repeats
    ],
)
def test_repeated_is_pandas_duplicated_keep_first(values: pd.Series) -> None:
    expected = values.duplicated(keep="first").to_numpy()
    np.testing.assert_array_equal(_repeated(values), expected)


def test_repeated_on_many_order_numbers_matches_pandas() -> None:
    numbers = np.random.default_rng(3).integers(10_000, 30_000, 20_000).astype(np.int64)
    values = pd.Series(numbers)
    np.testing.assert_array_equal(_repeated(values), values.duplicated(keep="first").to_numpy())
