"""The counts state: the latest known events per cell and hour, published apart from the model.

A model's forecasts start at its origin, the hour after the last count it knows. Between
retrains, new events are ingested; the counts state carries their counts (``cell, hour,
busyness``, UTC hours, a few weeks at most) and the hour they are complete up to (``end``), so a
running server can answer from ``model.with_counts(state.counts, state.end)`` without a refit
or a restart. It is one Parquet file (data only, no code), written whole or not at all, with its
metadata (``end``, when it was published, the batches it comes from) in the file's key-value
metadata. Local paths and ``s3://`` URIs alike (fsspec).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from geo_busyness.schemas import CELL, HOUR, TARGET

logger = logging.getLogger(__name__)

#: Key of the state's metadata in the Parquet file's key-value metadata.
METADATA_KEY = b"geo_busyness.counts_state"
#: Format version written; a reader refuses versions it does not know.
FORMAT_VERSION = 1


class CountsStateError(ValueError):
    """A counts state that cannot be read or used: says which file and what is wrong."""


@dataclass(frozen=True)
class CountsState:
    """Events per (cell, UTC hour) known up to ``end`` (exclusive), published at ``published_at``."""

    counts: pd.DataFrame  # cell (uint64), hour (UTC), busyness (float)
    end: pd.Timestamp  # UTC hour after the last complete one
    published_at: pd.Timestamp  # UTC
    batches: tuple[str, ...] = field(default=())

    def age_seconds(self, now: pd.Timestamp | None = None) -> float:
        """Seconds since the last complete hour (``end``): how stale a nowcast from it is."""
        now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        return max(0.0, (now - self.end).total_seconds())

    def apply(self, model: Any) -> Any:
        """``model`` knowing these counts too (no refit); a state that ends before the model's
        origin adds nothing, and the model is returned as it is."""
        if self.end <= model.origin:
            return model
        return model.with_counts(self.counts, self.end)


def counts_state(
    counts: pd.DataFrame,
    end: pd.Timestamp | str,
    batches: tuple[str, ...] | list[str] = (),
    published_at: pd.Timestamp | None = None,
) -> CountsState:
    """A checked state: ``counts`` needs ``cell, hour, busyness``; hours at or after ``end`` are
    refused (they are not complete)."""
    missing = [c for c in (CELL, HOUR, TARGET) if c not in counts.columns]
    if missing:
        raise CountsStateError(
            f"Counts state needs columns {CELL!r}, {HOUR!r}, {TARGET!r}; missing {missing}."
        )
    end = _utc(end, "end")
    hours = pd.to_datetime(counts[HOUR], utc=True)
    late = hours >= end
    if late.any():
        raise CountsStateError(
            f"Counts state row {int(late.to_numpy().argmax())}: hour {hours[late].iloc[0]} is not "
            f"before the state's end {end} (only complete hours belong in it)."
        )
    frame = pd.DataFrame(
        {
            CELL: counts[CELL].to_numpy(dtype="uint64"),
            HOUR: hours.to_numpy(),
            TARGET: counts[TARGET].to_numpy(dtype="float32"),
        }
    )
    frame[HOUR] = pd.to_datetime(frame[HOUR], utc=True).astype("datetime64[ns, UTC]")
    stamp = pd.Timestamp.now(tz="UTC") if published_at is None else _utc(published_at, "published")
    return CountsState(frame, end, stamp, tuple(batches))


def write_counts_state(state: CountsState, path: str) -> None:
    """Write ``state`` to ``path`` whole or not at all (a temporary name, then a rename)."""
    meta = {
        "format": FORMAT_VERSION,
        "end": state.end.isoformat(),
        "published_at": state.published_at.isoformat(),
        "batches": list(state.batches),
    }
    counts = state.counts
    # Column by column: pyarrow's from_pandas reads a zoned column through Series.values,
    # which pandas 3.1 deprecates (a warning on every write).
    hours_utc = counts[HOUR].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    table = pa.table(
        {
            CELL: pa.array(counts[CELL].to_numpy(dtype="uint64")),
            HOUR: pa.array(hours_utc).cast(pa.timestamp("ns", tz="UTC")),
            TARGET: pa.array(counts[TARGET].to_numpy(dtype="float32")),
        }
    )
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()}
    )
    fs, target = fsspec.core.url_to_fs(path)
    parent = os.path.dirname(target)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    staged = f"{target}.{uuid.uuid4().hex}.partial"
    with fs.open(staged, "wb") as stream:
        pq.write_table(table, stream)
    fs.mv(staged, target)


def read_counts_state(path: str) -> CountsState:
    """The state at ``path``; ``CountsStateError`` naming the file when it is not one."""
    fs, target = fsspec.core.url_to_fs(path)
    try:
        with fs.open(target, "rb") as stream:
            table = pq.read_table(stream)
    except FileNotFoundError as exc:
        raise CountsStateError(f"No counts state at {path}.") from exc
    except (OSError, pa.ArrowInvalid) as exc:
        raise CountsStateError(f"{path} is not a counts state (Parquet): {exc}") from exc
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise CountsStateError(f"{path} carries no counts-state metadata ({METADATA_KEY!r}).")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT_VERSION:
        raise CountsStateError(
            f"{path}: counts-state format {meta.get('format')!r}, expected {FORMAT_VERSION}."
        )
    return counts_state(
        table.to_pandas(), meta["end"], meta.get("batches", []), meta["published_at"]
    )


def _utc(value: Any, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        raise CountsStateError(f"Counts state {name} is missing.")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# ---------------------------------------------------------------- following a published state
def state_signature(path: str) -> tuple[str, ...] | None:
    """What changes when the state at ``path`` is republished (ETag, modification time, size),
    from one ``info`` call (no read); None when there is no file."""
    fs, target = fsspec.core.url_to_fs(path)
    fs.invalidate_cache(target)  # s3fs answers info from its listing cache otherwise
    try:
        info = fs.info(target)
    except FileNotFoundError:
        return None
    return tuple(str(info.get(key)) for key in ("ETag", "LastModified", "mtime", "size"))


class CountsFollower:
    """A model that takes the latest counts state at ``path``, looked at (one ``info`` call) at
    most every ``interval_s`` seconds, in the caller's own thread: for a process that has no
    background thread of its own (SageMaker's ``model_fn``/``predict_fn``).

    ``model()`` is the base model with the newest state that read and applied; a state that
    fails is logged once and the previous model kept.
    """

    def __init__(self, base: Any, path: str | None, interval_s: float = 60.0) -> None:
        self.base, self.path, self.interval_s = base, path, float(interval_s)
        self.state: CountsState | None = None
        self._model, self._signature, self._due = base, None, 0.0

    def model(self, now_s: float | None = None) -> Any:
        """The model to answer with now (the state looked at first, when due)."""
        now_s = time.monotonic() if now_s is None else now_s
        if self.path and now_s >= self._due:
            self._due = now_s + self.interval_s
            self._refresh()
        return self._model

    def _refresh(self) -> None:
        try:
            signature = state_signature(str(self.path))
            if signature is None or signature == self._signature:
                return
            self._signature = signature
            state = read_counts_state(str(self.path))
            self._model, self.state = state.apply(self.base), state
        except Exception as exc:  # noqa: BLE001 - the previous counts keep answering
            logger.error("Counts state %s refused: %s: %s", self.path, type(exc).__name__, exc)
