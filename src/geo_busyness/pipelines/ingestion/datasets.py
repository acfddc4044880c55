"""The ingestion's storage: the landing folder, the event history partitioned by local date and
batch, an optional record and the counts state file.

- ``BatchFolderDataset``: Kedro's ``PartitionedDataset`` whose load is ``{}`` for an empty or
  missing folder (nothing landed yet is not an error).
- ``EventHistoryDataset``: clean events at ``<path>/local_date=YYYY-MM-DD/batch=<name>.parquet``.
  Saving ``{batch: rows}`` writes that batch's date partitions, then removes its files at other
  dates: a batch's rows are replaced as a whole, other batches are never touched.
- ``OptionalJSONDataset``: ``None`` when nothing is stored (the first ingestion).
- ``CountsStateDataset``: ``model.counts_state``'s file (written whole or not at all).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.partitions import PartitionedDataset

from geo_busyness.datasets import JSONDataset
from geo_busyness.model.counts_state import (
    CountsState,
    CountsStateError,
    read_counts_state,
    write_counts_state,
)

logger = logging.getLogger(__name__)

#: The column a saved batch carries to say which date partition each row goes to (dropped on
#: write: the partition key holds it).
LOCAL_DATE = "local_date"
#: A batch name: the landing file's name without ``.csv``; it names files, so no separators.
BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEY = re.compile(r"^local_date=(?P<date>\d{4}-\d{2}-\d{2})/batch=(?P<batch>[^/]+)$")


def partition_key(local_date: str, batch: str) -> str:
    """``local_date=2026-03-02/batch=week_03``: a history partition's key."""
    return f"{LOCAL_DATE}={local_date}/batch={batch}"


def parse_partition_key(key: str) -> tuple[str, str]:
    """(local date, batch) of a history partition key; ``ValueError`` naming a foreign key."""
    found = _KEY.match(key)
    if found is None:
        raise ValueError(
            f"Event history partition {key!r} is not named local_date=YYYY-MM-DD/batch=<name>;"
            " only the ingestion pipeline writes into the event history folder."
        )
    return found["date"], found["batch"]


class BatchFolderDataset(PartitionedDataset):
    """``PartitionedDataset`` loading ``{}`` where nothing is stored yet."""

    def load(self) -> dict[str, Any]:
        try:
            return super().load()
        except DatasetError:
            if self._list_partitions():
                raise
            return {}


class EventHistoryDataset(BatchFolderDataset):
    """Clean events partitioned by local date and batch; a save replaces whole batches."""

    def save(self, data: dict[str, pd.DataFrame]) -> None:
        """Write each batch's rows (``LOCAL_DATE`` says where), then remove its older files at
        dates it no longer has. New files first: an interrupted save leaves extra files of a
        batch, which the next ingestion of it (the record was not updated) replaces."""
        existing = self._batch_keys() if data else {}
        for batch, rows in sorted(data.items()):
            if not BATCH_NAME.match(batch):
                raise DatasetError(
                    f"Batch name {batch!r} cannot name a file: expected letters, digits, '.', '_'"
                    " or '-', starting with a letter or digit."
                )
            if LOCAL_DATE not in rows.columns:
                raise DatasetError(f"Batch {batch!r}: rows need a {LOCAL_DATE!r} column.")
            parts = {
                partition_key(str(date), batch): part.drop(columns=LOCAL_DATE).reset_index(
                    drop=True
                )
                for date, part in rows.groupby(LOCAL_DATE, sort=True)
            }
            super().save(parts)
            for stale in sorted(existing.get(batch, set()) - set(parts)):
                self._filesystem.rm(self._partition_to_path(stale))
                logger.info("Event history: removed %s (batch %s replaced)", stale, batch)
        self._invalidate_caches()

    def _batch_keys(self) -> dict[str, set[str]]:
        """Every stored partition key, by batch."""
        self._invalidate_caches()
        keys: dict[str, set[str]] = {}
        for path in self._list_partitions():
            key = self._path_to_partition(path)
            keys.setdefault(parse_partition_key(key)[1], set()).add(key)
        return keys


class OptionalJSONDataset(JSONDataset):
    """``JSONDataset`` whose load gives ``None`` when nothing is stored at its path."""

    def load(self) -> Any:
        if not self._exists():
            return None
        return super().load()


@dataclass(frozen=True)
class NothingToPublish:
    """What the counts-state node returns when there is no ingested event yet (no file written)."""

    reason: str


class CountsStateDataset(AbstractDataset):
    """The counts state at ``filepath`` (local or ``s3://``), via ``model.counts_state``."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = filepath
        self.metadata = metadata

    def load(self) -> CountsState:
        return read_counts_state(self._filepath)

    def save(self, data: CountsState | NothingToPublish) -> None:
        if isinstance(data, NothingToPublish):
            logger.info("Counts state not published: %s", data.reason)
            return
        write_counts_state(data, self._filepath)

    def _exists(self) -> bool:
        try:
            read_counts_state(self._filepath)
        except CountsStateError:
            return False
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}
