"""Catalog dataset types that never leave a half-written file or object behind.

kedro-datasets' file datasets open the final path and serialise into it, so a save that fails
midway (a column Parquet cannot hold, a full disk, a dropped connection) leaves an empty or
truncated file where the last good output was. These subclasses never write the final path
directly: on a local disk they serialise into a sibling temporary file renamed over the target
once complete (nothing is held in memory: a 10M-row Parquet file is hundreds of MB); elsewhere
(S3) they serialise into memory and write the finished bytes in one PUT.
Use them in the catalog as ``geo_busyness.datasets.ParquetDataset`` and so on.

``CachedDataset`` is Kedro's (a dataset also kept in memory for the rest of the run) showing
kedro-viz the file it wraps.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import fsspec
import pandas as pd
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from kedro.io import AbstractVersionedDataset, DatasetError, Version
from kedro.io import CachedDataset as _CachedDataset
from kedro.io.core import get_filepath_str, get_protocol_and_path
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.pickle import PickleDataset as _PickleDataset
from kedro_datasets.plotly import HTMLDataset as _PlotlyHTMLDataset
from kedro_datasets.plotly import JSONDataset as _PlotlyJSONDataset
from kedro_datasets.text import TextDataset as _TextDataset
from pandas.errors import EmptyDataError, ParserError

from geo_busyness.raw_lines import MAX_LINE_BYTES, AuditedLines, audit_settings
from geo_busyness.schemas import LINE_FAULT, LINE_TEXT

if TYPE_CHECKING:
    from kedro_datasets._typing import TablePreview

logger = logging.getLogger(__name__)

_LOCAL = ("file", "local")
#: A staged save is ``<target>.<random>.<pid>@<host>.partial``, renamed over the target once
#: whole; one left by a save that died (kill -9, power loss) is removed by the next save.
_PARTIAL = ".partial"
_STAGED_NAME = re.compile(r"[0-9a-f]{32}\.(?P<pid>\d+)@(?P<host>.+)")
#: A staged file of another host (or named before the pid was recorded) that has not changed
#: for this long belongs to a save that is over: a live one keeps writing.
STALE_PARTIAL_S = 15 * 60


class _StagingFileSystem(MemoryFileSystem):
    """An in-memory filesystem private to one save (MemoryFileSystem's store is process-wide)."""

    cachable = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store: dict = {}
        self.pseudo_dirs: list[str] = [""]


def exception_chain(error: BaseException) -> list[BaseException]:
    """The exception and every cause or context behind it."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _first_missing(folder: str) -> str | None:
    """The outermost folder of ``folder``'s path that does not exist yet, or None."""
    missing = None
    while folder and not os.path.exists(folder):
        missing, folder = folder, os.path.dirname(folder)
    return missing


class _StagedLocalFileSystem(LocalFileSystem):
    """The local filesystem, except that writing ``target`` writes ``staged`` instead."""

    cachable = False

    def __init__(self, target: str, staged: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target, self.staged = target, staged

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" in mode and self._strip_protocol(path) == self._strip_protocol(self.target):
            path = self.staged
        return super().open(path, mode, **kwargs)


def _process_alive(pid: int) -> bool:
    """Whether a process of this host has the id ``pid``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def _abandoned(staged: str, target: str) -> bool:
    """Whether the save that staged ``staged`` (for ``target``) is over: its process on this
    host has ended, or (another host's, or an older name) it has not changed for
    ``STALE_PARTIAL_S``."""
    tail = os.path.basename(staged)[len(os.path.basename(target)) + 1 : -len(_PARTIAL)]
    named = _STAGED_NAME.fullmatch(tail)
    if named and named["host"] == socket.gethostname():
        return not _process_alive(int(named["pid"]))
    try:
        return time.time() - os.path.getmtime(staged) > STALE_PARTIAL_S
    except OSError:  # gone meanwhile
        return False


def remove_stale_partials(path: str, *, versioned: bool = False) -> list[str]:
    """Remove the staged files of saves of ``path`` that died before publishing (and, for a
    versioned dataset, those in every version folder, with a folder they leave empty); the
    removed paths. Saves still running, here or on another host, are left alone."""
    name, own = os.path.basename(path), os.path.dirname(path) or "."
    folders = [own]
    if versioned:  # <root>/<version>/<name>: a dead save's version folder is never reused
        folders = glob.glob(os.path.join(glob.escape(os.path.dirname(own)), "*"))
    removed = []
    for folder in folders:
        target = os.path.join(folder, name)
        stale = [
            staged
            for staged in glob.glob(f"{glob.escape(target)}.*{_PARTIAL}")
            if _abandoned(staged, target)
        ]
        for staged in stale:
            with contextlib.suppress(FileNotFoundError):
                os.remove(staged)
        if stale and folder != own and not os.listdir(folder):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        removed += stale
    if removed:
        logger.info("Removed %d file(s) left by interrupted saves: %s", len(removed), removed)
    return removed


class _AtomicSave:
    """Mixin: run the parent's serialiser into a staged file (or memory), then publish once."""

    _fs: fsspec.AbstractFileSystem
    _protocol: str

    def save(self, data: Any) -> None:
        """Serialise away from the real path, then put the finished file there in one step."""
        target = self._fs
        path = get_filepath_str(self._get_save_path(), self._protocol)  # type: ignore[attr-defined]
        if self._protocol in _LOCAL:
            folder = os.path.dirname(path) or "."
            created = _first_missing(folder)  # removed again if the save fails
            os.makedirs(folder, exist_ok=True)
            remove_stale_partials(path, versioned=getattr(self, "_version", None) is not None)
            staged = f"{path}.{uuid.uuid4().hex}.{os.getpid()}@{socket.gethostname()}{_PARTIAL}"
            self._fs = _StagedLocalFileSystem(path, staged)
            try:
                self._serialise(data)
                os.replace(staged, path)  # atomic within one filesystem
            except BaseException:
                if created:  # e.g. a version folder: no trace of a failed save
                    shutil.rmtree(created, ignore_errors=True)
                raise
            finally:
                self._fs = target
                if os.path.exists(staged):
                    os.remove(staged)
        else:
            staging = _StagingFileSystem()
            self._fs = staging
            try:
                self._serialise(data)
                payload = staging.cat_file(path)
            finally:
                self._fs = target
            target.pipe_file(path, payload)  # one PUT: the object appears whole or not at all
        target.invalidate_cache(path)

    def _serialise(self, data: Any) -> None:
        """The parent dataset's own save, unwrapped (Kedro wraps save; we are wrapped too)."""
        parent = super().save  # type: ignore[misc]
        serialise = getattr(parent, "__wrapped__", None)
        if serialise is not None:
            serialise(self, data)
        else:
            parent(data)


def release_arrow_memory() -> None:
    """Hand back to the system the memory Arrow's allocator keeps after a large read or write.

    Arrow's pool (jemalloc here: ``prefer_jemalloc_pool``) keeps the pages of freed buffers for
    its own later use; after reading 10M events from Parquet it held ~0.7 GB that the next
    steps' numpy arrays cannot reuse, on top of the table itself.
    """
    pa.default_memory_pool().release_unused()


#: ``to_parquet`` engines that take Arrow's ``use_dictionary``.
_ARROW_ENGINES = ("auto", "pyarrow")
#: Rows of a table ``dictionary_columns`` judges each column by.
DICTIONARY_SAMPLE_ROWS = 65_536
#: Share of distinct values in those rows above which a column gets no dictionary.
MAX_DISTINCT_SHARE = 0.5


def dictionary_columns(data: pd.DataFrame) -> list[str] | None:
    """The columns of ``data`` worth a Parquet dictionary: those whose first
    ``DICTIONARY_SAMPLE_ROWS`` rows repeat values (at most ``MAX_DISTINCT_SHARE`` distinct);
    None (Arrow's default: every column) when a name is not text or a value is not hashable.

    Arrow tries a dictionary for every column and gives it up only once it has grown too
    large: for 10M row numbers or coordinates, hashing every value for nothing was a quarter
    of the clean events' write. The values written are the same either way.
    """
    if not all(isinstance(name, str) for name in data.columns):
        return None
    sample = data.iloc[:DICTIONARY_SAMPLE_ROWS]
    try:
        return [
            name
            for name, values in sample.items()
            if values.nunique() <= MAX_DISTINCT_SHARE * len(sample)
        ]
    except TypeError:  # unhashable values (lists, dicts): Arrow's own choice
        return None


def prefer_jemalloc_pool() -> None:
    """Make Arrow's jemalloc pool this process's default, unless ``ARROW_DEFAULT_MEMORY_POOL``
    names one (or this Arrow build has no jemalloc).

    With the default pool (mimalloc) the first read of a 10M-event Parquet file in a fresh
    process spent 2-3 s in the kernel (fresh pages) against ~1 s with jemalloc, measured on
    this project's 2-core machine; the run's peak memory was also ~0.1 GB lower.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        return
    if pa.default_memory_pool().backend_name != pool.backend_name:
        pa.set_memory_pool(pool)


class ParquetDataset(_AtomicSave, _ParquetDataset):
    """``pandas.ParquetDataset`` with all-or-nothing saves, through Arrow's jemalloc pool
    (``prefer_jemalloc_pool``; its spare memory released after each load and save:
    ``release_arrow_memory``); unless ``save_args`` set ``use_dictionary``
    (or another engine), only ``dictionary_columns`` are dictionary-encoded."""

    def load(self) -> Any:
        prefer_jemalloc_pool()
        try:
            return super().load()
        finally:
            release_arrow_memory()

    def save(self, data: Any) -> None:
        prefer_jemalloc_pool()
        save_args = self._save_args
        chosen = (
            "use_dictionary" in save_args or save_args.get("engine", "auto") not in _ARROW_ENGINES
        )
        if not chosen and isinstance(data, pd.DataFrame):
            columns = dictionary_columns(data)
            if columns is not None:
                self._save_args = {**save_args, "use_dictionary": columns}
        try:
            super().save(data)
        finally:
            self._save_args = save_args
            release_arrow_memory()


class CSVDataset(_AtomicSave, _CSVDataset):
    """``pandas.CSVDataset`` with all-or-nothing saves, and loads that account for every line.

    A line pandas' parser cannot read as one row (a stray quote that would fold the lines after
    it into one value, a carriage return inside it, more than ``max_line_bytes`` bytes) or a
    blank line (which it would skip) is loaded as a row of nulls with ``LINE_FAULT`` (the
    reason) and ``LINE_TEXT`` (the line) set: one row per data line, in file order (those two
    columns exist only when the file has such a line). Load errors name the file and the lines:
    an empty file, bytes that are not text in the file's encoding, a row with too many fields.
    With load_args that break one row per line (``skiprows``, ``comment``, ``quoting``...) or a
    zip/tar file, the file is read as pandas reads it.
    """

    def __init__(self, *, max_line_bytes: int = MAX_LINE_BYTES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_line_bytes = max_line_bytes

    def load(self) -> Any:
        try:
            return self._read()
        except Exception as error:
            causes = exception_chain(error)
            if any(isinstance(cause, EmptyDataError) for cause in causes):
                raise DatasetError(
                    f"{self._display_path()} is empty: expected a CSV file with a header row"
                    " naming its columns and at least one data row."
                ) from error
            if any(isinstance(cause, UnicodeDecodeError) for cause in causes):
                raise DatasetError(self._undecodable_lines_message()) from error
            raise

    def _read(self) -> pd.DataFrame:
        """The table, every data line a row (unaudited with options that break that)."""
        settings = audit_settings(self._load_args, str(self._get_load_path()))
        if settings is None:
            return super().load()
        sep, quote, codec, encoding = settings
        path = get_filepath_str(self._get_load_path(), self._protocol)
        args = {key: value for key, value in self._load_args.items() if key != "compression"}
        with self._fs.open(path, "rb", compression=codec) as source:
            lines = AuditedLines(
                self._display_path(), source, sep, quote, self._max_line_bytes, encoding
            )
            try:
                frame = pd.read_csv(lines, **args)
            except ParserError as error:
                where = re.sub(
                    r"line (\d+)", lambda m: f"line {lines.original_line(int(m[1]))}", str(error)
                )
                raise DatasetError(
                    f"{self._display_path()}: {where}. Quote the fields that hold the separator,"
                    " or remove the line."
                ) from error
        frame = lines.with_fault_rows(frame)
        if lines.fault_lines:
            counts = pd.Series(lines.fault_reasons).value_counts()
            logger.warning(
                "%s: %d of %d data line(s) could not be read as rows (%s; first at line(s) %s):"
                " kept as rows of nulls with %s and %s set (data_processing quarantines them).",
                self._display_path(),
                len(lines.fault_lines),
                len(frame),
                ", ".join(f"{reason}: {count}" for reason, count in counts.items()),
                ", ".join(str(line) for line in lines.fault_lines[:5]),
                LINE_FAULT,
                LINE_TEXT,
            )
        return frame

    def _display_path(self) -> str:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        return path if self._protocol in _LOCAL else f"{self._protocol}://{path}"

    def _undecodable_lines_message(self, show: int = 5) -> str:
        """Which lines (1-based, the header is line 1) are not text in the file's encoding."""
        encoding = self._load_args.get("encoding") or "utf-8"
        path = get_filepath_str(self._get_load_path(), self._protocol)
        bad: list[int] = []
        count = 0
        with self._fs.open(path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError:
                    count += 1
                    if len(bad) < show:
                        bad.append(number)
        where = ", ".join(str(n) for n in bad) + (
            f" and {count - len(bad)} more" if count > show else ""
        )
        return (
            f"{self._display_path()} is not {encoding} text at line(s) {where}"
            f" ({count} line(s) in all); nothing was read. Fix or remove those lines, re-export"
            f" the file as {encoding}, or set load_args.encoding for this dataset in the catalog"
            " (e.g. latin-1)."
        )


class OptionalCSVDataset(CSVDataset):
    """``CSVDataset`` whose load gives ``None`` when nothing is stored at its path (no file, or
    a file of zero bytes): an input a run can do without (Kedro has no optional node input;
    the node decides). A file with a header and no rows is an empty table, as with the plain
    dataset. Saves are the plain dataset's. ``recent_raw_events`` and ``inference_queries``
    are such inputs: only the synthetic generator writes them."""

    def load(self) -> Any:
        if self.is_absent():
            return None
        return super().load()

    def is_absent(self) -> bool:
        """True when there is no file at the path, or only an empty one."""
        if not self._exists():
            return True
        path = get_filepath_str(self._get_load_path(), self._protocol)
        return self._fs.size(path) == 0


class JSONDataset(_AtomicSave, _JSONDataset):
    """``json.JSONDataset`` with all-or-nothing saves."""


class PickleDataset(_AtomicSave, _PickleDataset):
    """``pickle.PickleDataset`` with all-or-nothing saves."""


class PlotlyJSONDataset(_AtomicSave, _PlotlyJSONDataset):
    """``plotly.JSONDataset`` (figures kedro-viz previews) with all-or-nothing saves."""


class PlotlyHTMLDataset(_AtomicSave, _PlotlyHTMLDataset):
    """``plotly.HTMLDataset`` with all-or-nothing saves."""


class MatplotlibDataset(_AtomicSave, _MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` (a PNG kedro-viz previews) with all-or-nothing saves."""


class TextDataset(_AtomicSave, _TextDataset):
    """``text.TextDataset`` with all-or-nothing saves."""


class CachedDataset(_CachedDataset):
    """Kedro's ``CachedDataset`` (saved to the wrapped dataset and kept in memory until its last
    reader in the run is done), described as its wrapped file so kedro-viz shows that file's
    path and a table preview, and storage-fault messages name it, as for the dataset
    unwrapped."""

    def _describe(self) -> dict[str, Any]:
        return {**self._dataset._describe(), "cache": self._cache._describe()}

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first rows of the wrapped file (kedro-viz's preview asks the wrapper)."""
        return self._dataset.preview(nrows=nrows)  # type: ignore[attr-defined]


#: Suffix of the marker beside a generated file: the sha256 of the bytes the generator wrote.
GENERATED_MARKER_SUFFIX = ".generated.sha256"


class GeneratedFileError(DatasetError):
    """The generator was about to replace a file it did not write."""


class _GeneratedOnly:
    """Mixin for what data_generation writes: it never replaces a file it did not write.

    Each save leaves ``<file>.generated.sha256`` beside the file; a later save overwrites the
    file only if it still has exactly those bytes. A user's own export at the same path (no
    marker, or other bytes) is refused, whatever the catalog says.
    """

    _fs: fsspec.AbstractFileSystem
    _protocol: str

    def save(self, data: Any) -> None:
        path = get_filepath_str(self._get_save_path(), self._protocol)  # type: ignore[attr-defined]
        marker = path + GENERATED_MARKER_SUFFIX
        if self._fs.exists(path) and self._recorded_digest(marker) != self._digest(path):
            shown = path if self._protocol in _LOCAL else f"{self._protocol}://{path}"
            raise GeneratedFileError(
                f"data_generation will not overwrite {shown}: that file was not written by"
                " data_generation (or was changed since), so it may be your data. Move it"
                " elsewhere and point raw_events at it, or delete it to generate a synthetic one."
            )
        super().save(data)  # type: ignore[misc]
        self._fs.pipe_file(marker, self._digest(path).encode())

    def _digest(self, path: str) -> str:
        digest = hashlib.sha256()
        with self._fs.open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def _recorded_digest(self, marker: str) -> str | None:
        try:
            return self._fs.cat_file(marker).decode().strip()
        except (FileNotFoundError, OSError):
            return None


class GeneratedCSVDataset(_GeneratedOnly, CSVDataset):
    """A CSV file data_generation writes (never over a file it did not write)."""


class GeneratedParquetDataset(_GeneratedOnly, ParquetDataset):
    """A Parquet file data_generation writes (never over a file it did not write)."""


class GeneratedJSONDataset(_GeneratedOnly, JSONDataset):
    """A JSON file data_generation writes (never over a file it did not write)."""


class ForecasterDataset(AbstractVersionedDataset):
    """The forecaster as an artifact folder (``geo_busyness.model.artifact``): JSON, ``.npz``
    and skops files, never a pickle; its sha256 checked before any model state is read
    (``ArtifactIntegrityError`` naming the changed or missing file).

    A local save writes a sibling staging folder, then swaps it in; elsewhere (S3) the files
    are uploaded with the digest record last, so a partial upload is refused as digest-less.
    ``versioned: true`` keeps each save as ``<filepath>/<version>/<name>``.
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _exists(self) -> bool:
        from geo_busyness.model.artifact import DIGEST_FILE  # noqa: PLC0415

        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(f"{path}/{DIGEST_FILE}")

    def load(self) -> Any:
        """The verified forecaster."""
        import tempfile  # noqa: PLC0415

        from geo_busyness.model.artifact import load_forecaster  # noqa: PLC0415

        path = get_filepath_str(self._get_load_path(), self._protocol)
        if self._protocol in _LOCAL:
            return load_forecaster(path)
        with tempfile.TemporaryDirectory(prefix="geo-busyness-artifact-") as local:
            for remote in self._fs.ls(path, detail=False):
                self._fs.get_file(remote, f"{local}/{PurePosixPath(remote).name}")
            return load_forecaster(local)

    def save(self, data: Any) -> None:
        """Write the artifact away from the target, then put it there whole."""
        import tempfile  # noqa: PLC0415

        from geo_busyness.model.artifact import DIGEST_FILE, save_forecaster  # noqa: PLC0415

        path = get_filepath_str(self._get_save_path(), self._protocol)
        if self._protocol in _LOCAL:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            staged = f"{path}.{uuid.uuid4().hex}{_PARTIAL}"
            try:
                save_forecaster(data, staged)
                if os.path.exists(path):
                    os.replace(path, f"{staged}.old")
                os.replace(staged, path)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
                shutil.rmtree(f"{staged}.old", ignore_errors=True)
            return
        with tempfile.TemporaryDirectory(prefix="geo-busyness-artifact-") as local:
            folder = f"{local}/artifact"
            save_forecaster(data, folder)
            if self._fs.exists(path):
                self._fs.rm(path, recursive=True)
            names = sorted(os.listdir(folder), key=lambda name: name == DIGEST_FILE)
            for name in names:  # the digest record last: a half upload reads as digest-less
                self._fs.put_file(f"{folder}/{name}", f"{path}/{name}")
        self._fs.invalidate_cache(path)
