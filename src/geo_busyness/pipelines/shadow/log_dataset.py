"""The shadow log as a Kedro dataset: every rotated file and the active one, read in chunks.

``kedro serve --shadow`` appends to ``filepath`` and rotates it by size
(``geo_busyness.serving.shadow.ShadowLog``): full files are renamed
``<stem>.<UTC time>Z<suffix>`` beside it. Loading yields the text of all of them, oldest
first, in chunks of whole lines of about ``chunk_bytes`` (a single longer line is one chunk),
so the shadow pipeline never holds the whole log in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path

#: Bytes of text per chunk when the catalog does not say.
DEFAULT_CHUNK_BYTES = 4 * 2**20


class ShadowLogDataset(AbstractDataset[None, Iterator[str]]):
    """Read-only: the shadow log's lines in bounded chunks (a generator of strings)."""

    def __init__(
        self,
        *,
        filepath: str,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if int(chunk_bytes) < 1:
            raise DatasetError(f"ShadowLogDataset chunk_bytes must be >= 1, got {chunk_bytes}.")
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._chunk_bytes = int(chunk_bytes)
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self.metadata = metadata

    def files(self) -> list[str]:
        """The rotated files (oldest first, their names sort by time), then the active one."""
        path = self._filepath
        pattern = str(path.with_name(f"{path.stem}.*{path.suffix}"))
        rotated = sorted(self._fs.glob(pattern))
        active = [str(path)] if self._fs.exists(str(path)) else []
        return [*rotated, *active]

    def load(self) -> Iterator[str]:
        """The log's text, chunk by chunk (nothing when no file exists yet)."""
        return self._chunks(self.files())

    def _chunks(self, files: list[str]) -> Iterator[str]:
        for name in files:
            try:
                handle = self._fs.open(name, "r", encoding="utf-8", errors="replace")
            except FileNotFoundError:  # rotated away between listing and opening: read later
                continue
            with handle:
                lines, size = [], 0
                for line in handle:
                    lines.append(line)
                    size += len(line)
                    if size >= self._chunk_bytes:
                        yield "".join(lines)
                        lines, size = [], 0
                if lines:
                    yield "".join(lines)

    def save(self, data: None) -> None:
        raise DatasetError(
            f"The shadow log {self._filepath} is written by `kedro serve --shadow`, not by a run."
        )

    def _exists(self) -> bool:
        return bool(self.files())

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "protocol": self._protocol,
            "chunk_bytes": self._chunk_bytes,
        }
