"""Catalog dataset types that never leave a half-written file or object behind.

kedro-datasets' file datasets open the final path and serialise into it, so a save that fails
midway (a column Parquet cannot hold, a full disk, a dropped connection) leaves an empty or
truncated file where the last good output was. These subclasses serialise into memory first,
then write the finished bytes in one step: one PUT on S3 (or a multipart upload that only
completes at the end), and on a local disk a sibling temporary file renamed over the target.
Use them in the catalog as ``geo_busyness.datasets.ParquetDataset`` and so on.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFileSystem
from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.pickle import PickleDataset as _PickleDataset

_LOCAL = ("file", "local")


def write_whole(fs: fsspec.AbstractFileSystem, protocol: str, path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old content or the new, never part."""
    if protocol in _LOCAL:
        fs.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        staged = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            with open(staged, "wb") as handle:
                handle.write(payload)
            os.replace(staged, path)  # atomic within one filesystem
        finally:
            if os.path.exists(staged):
                os.remove(staged)
    else:
        fs.pipe_file(path, payload)


class _StagingFileSystem(MemoryFileSystem):
    """An in-memory filesystem private to one save (MemoryFileSystem's store is process-wide)."""

    cachable = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store: dict = {}
        self.pseudo_dirs: list[str] = [""]


class _AtomicSave:
    """Mixin: run the parent's serialiser against an in-memory filesystem, then copy once."""

    _fs: fsspec.AbstractFileSystem
    _protocol: str

    def save(self, data: Any) -> None:
        """Serialise in memory, then write the bytes to the real path in one step."""
        parent = super().save  # type: ignore[misc]
        serialise = getattr(parent, "__wrapped__", None)  # Kedro wraps save; we are wrapped too
        target = self._fs
        staging = _StagingFileSystem()
        self._fs = staging
        try:
            if serialise is not None:
                serialise(self, data)
            else:
                parent(data)
            path = get_filepath_str(self._get_save_path(), self._protocol)  # type: ignore[attr-defined]
            payload = staging.cat_file(path)
        finally:
            self._fs = target
        write_whole(target, self._protocol, path, payload)
        target.invalidate_cache(path)


class ParquetDataset(_AtomicSave, _ParquetDataset):
    """``pandas.ParquetDataset`` with all-or-nothing saves."""


class CSVDataset(_AtomicSave, _CSVDataset):
    """``pandas.CSVDataset`` with all-or-nothing saves."""


class JSONDataset(_AtomicSave, _JSONDataset):
    """``json.JSONDataset`` with all-or-nothing saves."""


class PickleDataset(_AtomicSave, _PickleDataset):
    """``pickle.PickleDataset`` with all-or-nothing saves."""
