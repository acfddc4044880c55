"""Undo a failed generation: remove the files it wrote, never a file it did not write.

``kedro generate-data`` runs the pipeline only when ``raw_events`` does not exist. A run that
wrote the synthetic ``courier_events.csv`` and then failed (say, refusing to overwrite the
user's own ``recent_events.csv``) would leave the history behind: the next ``make data`` finds
``raw_events`` and trains on synthetic history beside the user's recent file. So the command
notes each output file's digest before the run (``file_states``) and, if the run fails,
removes every output file that appeared or changed during it, with its
``.generated.sha256`` marker (``remove_written``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from kedro.io.core import get_filepath_str

from geo_busyness.datasets import GENERATED_MARKER_SUFFIX

logger = logging.getLogger(__name__)


def output_file(dataset: Any) -> tuple[Any, str] | None:
    """(filesystem, path) of a file dataset's file, None for a dataset without one."""
    filesystem, filepath = getattr(dataset, "_fs", None), getattr(dataset, "_filepath", None)
    if filesystem is None or filepath is None:
        return None
    return filesystem, get_filepath_str(filepath, getattr(dataset, "_protocol", "file"))


def file_digest(filesystem: Any, path: str) -> str | None:
    """sha256 of the file's bytes, None when there is no file."""
    if not filesystem.exists(path):
        return None
    digest = hashlib.sha256()
    with filesystem.open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_states(catalog: Any, names: Iterable[str]) -> dict[str, str | None]:
    """Dataset name -> digest of its file now (None: absent), for the file datasets among
    ``names``."""
    states = {}
    for name in names:
        found = output_file(catalog.get(name)) if name in catalog else None
        if found is not None:
            states[name] = file_digest(*found)
    return states


def _marked_as(filesystem: Any, path: str) -> str | None:
    """The digest recorded in the file's generation marker, None without one."""
    try:
        return filesystem.cat_file(path + GENERATED_MARKER_SUFFIX).decode().strip()
    except (FileNotFoundError, OSError):
        return None


def remove_written(catalog: Any, before: dict[str, str | None]) -> list[str]:
    """Remove the files (and markers) the failed run wrote: those absent before it, and those
    it changed whose marker says the generator wrote the new bytes. Returns their paths.

    A file present before and unchanged, or changed by someone else (no matching marker), is
    left alone.
    """
    removed = []
    for name, digest_before in before.items():
        filesystem, path = output_file(catalog.get(name))  # type: ignore[misc]
        now = file_digest(filesystem, path)
        if now is None or now == digest_before:
            continue
        if digest_before is not None and _marked_as(filesystem, path) != now:
            continue
        filesystem.rm_file(path)
        if filesystem.exists(path + GENERATED_MARKER_SUFFIX):
            filesystem.rm_file(path + GENERATED_MARKER_SUFFIX)
        removed.append(path)
        logger.warning("Removed %s: written by the failed generation", path)
    return removed
