"""The ingestion pipeline run on real files in a folder (the project's own catalog entries with
their data root there), by Kedro's runner without a session: landing, history, quarantine,
record and counts state are the real datasets."""

from __future__ import annotations

import functools
from functools import reduce
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from geo_busyness.pipelines.data_generation.landing import batch_name, synthetic_batch
from geo_busyness.pipelines.ingestion.pipeline import create_pipeline
from geo_busyness.testing import PROJECT_ROOT
from tests.pipelines.memory import TINY_GENERATION, project_parameters

TIMEZONE_KEY = "data_processing.source_timezone"


@functools.cache
def tiny_parameters() -> dict[str, Any]:
    """The project's parameters with the tiny city (read-only)."""
    return project_parameters({"data_generation": TINY_GENERATION})


@functools.cache
def tiny_week(week_index: int, scale: float = 1.0) -> pd.DataFrame:
    """Raw rows of the tiny city's week ``week_index`` after its history (read-only)."""
    params = tiny_parameters()
    return synthetic_batch(
        params["data_generation"], params["data_processing"]["source_timezone"], week_index, scale
    )


def land(root: Path, name: str, rows: pd.DataFrame) -> Path:
    """Write ``rows`` as the landed batch ``name`` under data root ``root``."""
    landing = root / "01_raw" / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / f"{name}.csv"
    rows.to_csv(path, index=False)
    return path


def land_week(root: Path, week_index: int, scale: float = 1.0) -> Path:
    """Land the tiny city's week ``week_index`` under its synthetic batch name."""
    return land(root, batch_name(week_index), tiny_week(week_index, scale))


def _param(parameters: dict[str, Any], dotted: str) -> Any:
    return reduce(lambda value, key: value[key], dotted.split("."), parameters)


def ingestion_catalog(root: Path, parameters: dict[str, Any] | None = None) -> DataCatalog:
    """The ingestion pipeline's catalog entries (conf/base) with their data root at ``root``,
    and its parameters."""
    parameters = parameters or tiny_parameters()
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        base_env="base",
        default_run_env="base",
        runtime_params={"data_root": str(root)},
    )
    pipe = create_pipeline()
    entries = loader["catalog"]
    catalog = DataCatalog.from_config(
        {name: entries[name] for name in pipe.datasets() if name in entries}
    )
    for name in pipe.inputs():
        if name.startswith("params:"):
            catalog[name] = MemoryDataset(_param(parameters, name.removeprefix("params:")))
    return catalog


def ingest(root: Path, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the ingestion pipeline once on the files under ``root``; its record."""
    catalog = ingestion_catalog(root, parameters)
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("ingestion_record")


def history_files(root: Path) -> dict[str, pd.DataFrame]:
    """Every event history file by its partition key."""
    base = root / "03_primary" / "event_history"
    return {
        str(path.relative_to(base).with_suffix("")): pd.read_parquet(path)
        for path in sorted(base.rglob("*.parquet"))
    }


def history_rows(root: Path, batch: str | None = None) -> pd.DataFrame:
    """The event history's rows (of one batch), concatenated."""
    files = history_files(root)
    parts = [f for key, f in files.items() if batch is None or key.endswith(f"batch={batch}")]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
