"""The memory budget stops a run before it reads a raw file it could not hold in memory."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset

from geo_busyness.errors import ExplainedError
from geo_busyness.hooks.memory_budget import (
    BASE_MB,
    BYTES_PER_VALUE,
    CSV_EXPANSION,
    PEAK_PER_RAW_BYTE,
    MemoryBudgetError,
    MemoryBudgetHook,
    available_memory_bytes,
    check_memory_budget,
    check_raw_inputs,
    in_memory_bytes,
)
from geo_busyness.pipelines.data_processing.pipeline import create_pipeline
from tests.pipelines.data_processing.conftest import processing_params

ROWS = 20_000


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same small raw table as Parquet and as CSV."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "courier_location_timestamp": pd.Series(
                pd.date_range("2026-01-05", periods=ROWS, freq="min").strftime("%Y-%m-%dT%H:%M:%S")
            ),
            "courier_lat": rng.uniform(50.4, 50.5, ROWS),
            "courier_lon": rng.uniform(-104.7, -104.5, ROWS),
        }
    )
    folder = tmp_path_factory.mktemp("raw")
    table.to_parquet(folder / "events.parquet")
    table.to_csv(folder / "events.csv", index=False)
    return {"parquet": folder / "events.parquet", "csv": folder / "events.csv"}


def catalog_for(raw: Path, limit_mb: float | None) -> DataCatalog:
    """A real catalog: the raw file and the data_processing parameters with a memory limit."""
    kind = "pandas.ParquetDataset" if raw.suffix == ".parquet" else "pandas.CSVDataset"
    catalog = DataCatalog.from_config({"raw_events": {"type": kind, "filepath": str(raw)}})
    catalog["params:data_processing"] = MemoryDataset(processing_params(memory_limit_mb=limit_mb))
    return catalog


def test_the_parquet_estimate_comes_from_the_footer(raw_files):
    path = raw_files["parquet"]
    estimate = in_memory_bytes(str(path), path.stat().st_size)
    assert estimate == ROWS * 3 * BYTES_PER_VALUE  # 3 columns, not the file's compressed size
    csv = raw_files["csv"]
    assert in_memory_bytes(str(csv), csv.stat().st_size) == int(csv.stat().st_size * CSV_EXPANSION)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_file_over_the_limit_fails_before_the_run_naming_the_figures(raw_files, kind):
    catalog = catalog_for(raw_files[kind], limit_mb=0.5)
    with pytest.raises(MemoryBudgetError) as failure:
        MemoryBudgetHook().before_pipeline_run({}, create_pipeline(), catalog)
    message = str(failure.value)
    assert str(raw_files[kind]) in message
    assert "MB on disk" in message and "needs about" in message
    assert "0.5 MB are data_processing.memory_limit_mb" in message
    assert "data_processing.memory_limit_mb=" in message  # the parameter to change


def test_a_folder_of_parquet_files_is_budgeted_as_the_sum_of_its_files(raw_files, tmp_path):
    folder = tmp_path / "events.parquet"  # a partitioned dataset: a folder of part files
    folder.mkdir()
    for part in range(3):
        (folder / f"part-{part}.parquet").write_bytes(raw_files["parquet"].read_bytes())
    (folder / "_SUCCESS").write_text("")
    catalog = catalog_for(folder, limit_mb=0.5 + 3 * 3 * BYTES_PER_VALUE * ROWS / 2**20)
    with pytest.raises(MemoryBudgetError, match=r"about 2\.7 MB in memory"):
        MemoryBudgetHook().before_pipeline_run({}, create_pipeline(), catalog)


def test_a_file_within_the_limit_passes(raw_files):
    catalog = catalog_for(raw_files["parquet"], limit_mb=1000)
    MemoryBudgetHook().before_pipeline_run({}, create_pipeline(), catalog)


def test_the_need_is_the_base_plus_a_multiple_of_the_table():
    figures = check_memory_budget("raw_events", "x.parquet", 10, 100 * 2**20, 10_000)
    assert figures["need_mb"] == BASE_MB + PEAK_PER_RAW_BYTE * 100
    assert figures["available_mb"] == 10_000


def test_without_a_limit_the_machine_s_available_memory_is_the_budget():
    available_mb = available_memory_bytes() / 2**20
    assert available_mb > 0
    figures = check_memory_budget("raw_events", "x.parquet", 10, 2**20, None)
    assert figures["available_mb"] == pytest.approx(available_mb, rel=0.2)
    with pytest.raises(MemoryBudgetError, match="available on this machine"):
        check_memory_budget("raw_events", "x.parquet", 10, int(available_mb * 2**20), None)


def test_pipelines_without_the_raw_input_are_not_checked(raw_files):
    catalog = catalog_for(raw_files["parquet"], limit_mb=0.001)
    MemoryBudgetHook().before_pipeline_run(
        {}, create_pipeline().only_nodes("enforce_rejected_share"), catalog
    )


class _SilentFileSystem:
    """A file system whose endpoint accepts and never answers (what s3fs raises then)."""

    def exists(self, path: str) -> bool:
        raise TimeoutError("Read timeout on endpoint URL")


class _SilentDataset:
    _fs, _protocol = _SilentFileSystem(), "s3"

    def _get_load_path(self) -> PurePosixPath:
        return PurePosixPath("bucket/raw/events.csv")


def test_a_silent_storage_endpoint_stops_the_check_in_one_line():
    """Not left for the load to wait out the deadline a second time (#23 item 5)."""
    catalog = {"raw_events": _SilentDataset()}
    with pytest.raises(ExplainedError, match=r"'raw_events' at s3://bucket/raw/events.csv: the"):
        check_raw_inputs(create_pipeline(), catalog)
