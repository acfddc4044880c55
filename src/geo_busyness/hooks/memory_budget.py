"""Refuse, before reading it, a raw event file that data_processing could not hold in memory.

data_processing holds the raw table, its canonical view and the cleaned rows in memory at once.
A file too large for that would otherwise be read until the kernel's OOM killer ends the run
without a word. ``MemoryBudgetHook`` (in ``settings.HOOKS``; monitoring's
``recent_raw_events`` is checked the same way) estimates the need from the file (a Parquet
footer gives the in-memory size without reading any data) before the pipeline loads anything,
and stops with a message naming the file, the estimate, the memory available and the
parameter to change.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io.core import get_filepath_str

from geo_busyness.datasets import exception_chain
from geo_busyness.errors import ExplainedError
from geo_busyness.redaction import redact

logger = logging.getLogger(__name__)

#: Catalog entries checked, when a pipeline reads them.
CHECKED_INPUTS = ("raw_events", "recent_raw_events")
#: data_processing's peak RSS = ``BASE_MB`` (interpreter, Kedro, MLflow, pandas) plus
#: ``PEAK_PER_RAW_BYTE`` x the raw table's estimated in-memory size. This gives 0.9 GB at 1M
#: events and 4.3 GB at 10M; measured peaks were 0.82 and 3.8-4.1 GB when it was set, 0.70
#: and 3.1-3.4 GB (feature_engineering's 10M peak included) since: a cautious estimate.
PEAK_PER_RAW_BYTE = 3.0
BASE_MB = 512
#: Bytes a raw value takes in memory: 8 for a number, 20-30 for a timestamp text with offsets.
BYTES_PER_VALUE = 16
#: In-memory bytes per byte of CSV text (numbers become 8 bytes; text stays Arrow-backed).
CSV_EXPANSION = 1.5
_MB = 2**20


class MemoryBudgetError(MemoryError):
    """A raw input needs more memory than the run may use."""


def in_memory_bytes(path: str, file_bytes: int, open_file: Any = None) -> int:
    """Estimated size of a raw table in memory.

    Parquet: ``BYTES_PER_VALUE`` per row and column from the footer (its own uncompressed
    size undercounts dictionary-encoded text), or the footer's figure if larger. CSV: a
    multiple of the text's size.
    """
    if path.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq  # noqa: PLC0415 - settings import this module: keep it light

        metadata = pq.ParquetFile(open_file or path).metadata
        encoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        return max(encoded, metadata.num_rows * metadata.num_columns * BYTES_PER_VALUE)
    return int(file_bytes * CSV_EXPANSION)


def available_memory_bytes() -> int:
    """Memory this process may still use: the smaller of MemAvailable and the cgroup's room."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit.isdigit():
            available = min(available, int(limit) - usage)
    return available


def check_memory_budget(
    name: str, path: str, file_bytes: int, memory_bytes: int, limit_mb: float | None
) -> dict[str, float]:
    """Raise ``MemoryBudgetError`` when the estimated need exceeds the limit; else the figures.

    ``limit_mb`` is ``data_processing.memory_limit_mb``; null means the memory available now.
    """
    need = BASE_MB * _MB + PEAK_PER_RAW_BYTE * memory_bytes
    if limit_mb:
        available, source = limit_mb * _MB, "data_processing.memory_limit_mb"
    else:
        available, source = available_memory_bytes(), "available on this machine"
    figures = {"file_mb": file_bytes / _MB, "need_mb": need / _MB, "available_mb": available / _MB}
    if need > available:
        raise MemoryBudgetError(
            f"'{name}' ({path}, {figures['file_mb']:,.1f} MB on disk, about "
            f"{memory_bytes / _MB:,.1f} MB in memory) needs about {figures['need_mb']:,.1f} MB "
            f"to process ({BASE_MB} MB + {PEAK_PER_RAW_BYTE:g}x its in-memory size), but "
            f"{figures['available_mb']:,.1f} MB are {source}. Nothing was read. Split the "
            "input into smaller files, run on a machine with more memory, or set "
            "data_processing.memory_limit_mb (e.g. --params data_processing.memory_limit_mb="
            f"{figures['need_mb']:.0f}) if the estimate is too cautious."
        )
    return figures


def _file_of(dataset: Any) -> tuple[Any, str] | None:
    """(filesystem, path) of a file-backed kedro dataset, or None for any other dataset."""
    if not all(hasattr(dataset, attr) for attr in ("_fs", "_protocol", "_get_load_path")):
        return None
    return dataset._fs, get_filepath_str(dataset._get_load_path(), dataset._protocol)


def _parts(fs: Any, path: str) -> list[str]:
    """``path`` itself, or the data files of a folder (a partitioned Parquet dataset: every
    file under it but hidden and marker ones, such as ``_SUCCESS``)."""
    if not fs.isdir(path):
        return [path]
    return [part for part in sorted(fs.find(path)) if not Path(part).name.startswith(("_", "."))]


#: Exceptions (by class name, anywhere in the chain) of an endpoint that does not answer in time
#: (botocore, aiohttp, the standard library). A refused connection fails fast and is left to
#: the load, whose StorageErrorHook names it.
TIMEOUT_ERRORS = frozenset(
    {"ReadTimeoutError", "ConnectTimeoutError", "ServerTimeoutError", "TimeoutError"}
)


def _timed_out(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from or while handling) is a storage endpoint
    that did not answer in time."""
    return any(type(link).__name__ in TIMEOUT_ERRORS for link in exception_chain(error))


def check_raw_inputs(pipeline: Any, catalog: Any) -> None:
    """Raise ``MemoryBudgetError`` when a raw input the pipeline reads would not fit in memory.

    Only ``CHECKED_INPUTS`` that are the pipeline's inputs and file-backed catalog entries are
    checked; a missing or unreadable file is left for the load itself to report.
    """
    wanted = [name for name in CHECKED_INPUTS if name in pipeline.inputs() and name in catalog]
    if not wanted:
        return
    params = catalog.load("params:data_processing") if "params:data_processing" in catalog else {}
    for name in wanted:
        located = _file_of(catalog[name])
        if located is None:
            continue
        fs, path = located
        located_protocol = getattr(catalog[name], "_protocol", "file")
        try:
            if not fs.exists(path):
                continue  # the load itself will say the file is missing
            file_bytes, memory_bytes = 0, 0
            for part in _parts(fs, path):  # a file, or every file of a folder (partitioned)
                size = fs.size(part)
                with fs.open(part, "rb") as handle:
                    memory_bytes += in_memory_bytes(part, size, handle)
                file_bytes += size
        except Exception as error:  # noqa: BLE001 - storage faults are the load's to report
            if _timed_out(error):  # stop here: the load would wait out the deadline again
                url = (
                    path
                    if located_protocol in ("file", "local")
                    else f"{located_protocol}://{path}"
                )
                raise ExplainedError(
                    f"Could not load dataset '{name}' at {redact(url)}: the storage endpoint did"
                    f" not answer in time ({type(error).__name__}).",
                    "check the endpoint (AWS_ENDPOINT_URL, the catalog's credentials) and the"
                    " network; deadlines: geo_busyness.remote.",
                ) from error
            logger.debug("Memory budget of %s not checked: %s", name, error)
            continue
        check_memory_budget(name, path, file_bytes, memory_bytes, params.get("memory_limit_mb"))


class MemoryBudgetHook:
    """Check the raw inputs of a run against the memory budget before anything is loaded."""

    # tryfirst: refuse before other hooks act (kedro-mlflow would otherwise open a run first).
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Raise ``MemoryBudgetError`` before the run when a raw input would not fit."""
        check_raw_inputs(pipeline, catalog)
