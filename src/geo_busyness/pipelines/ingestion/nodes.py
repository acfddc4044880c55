"""Ingestion: landed batches not yet ingested -> cleaned like the history -> filed by batch into
the event history (and the quarantine), recorded; then the counts state is published.

A batch is one landing file; its name (the file name without ``.csv``) identifies it, its
content digest says whether it changed. The record is the memory of what was taken: a batch
whose digest is recorded adds nothing, a batch landed again with other content (a correction)
replaces its own rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.counts_state import CountsState, counts_state
from geo_busyness.schemas import EVENT_TIME, REJECT_REASON, SOURCE_ROW

from .datasets import BATCH_NAME, LOCAL_DATE, NothingToPublish, parse_partition_key, partition_key

logger = logging.getLogger(__name__)

#: What happened to a landed batch.
APPENDED, CORRECTED, UNCHANGED, REFUSED = "appended", "corrected", "unchanged", "refused"
_HOUR = pd.Timedelta(hours=1)


def table_digest(frame: pd.DataFrame) -> str:
    """``sha256:<hex>`` of a table as read: its column names and every value, in order."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def _known_digests(entry: dict[str, Any] | None) -> set[str]:
    """Digests a record entry has seen: the rows it holds, and a refused later version."""
    if not entry:
        return set()
    return {entry.get("digest"), (entry.get("last_refused") or {}).get("digest")} - {None}


def select_new_batches(
    landing: dict[str, Callable[[], pd.DataFrame]],
    record: dict[str, Any] | None,
    column_mapping: dict[str, str | None],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The raw rows of every landed batch whose content is not in the record, one table, and
    the plan saying which rows are whose (``batches``: name, digest, first row, rows, status).

    A batch lacking a mapped source column is refused here (``refused``, with the reason);
    files in folders under the landing folder are not batches. With nothing new the table is
    empty, in the source's columns, so the cleaning runs on no rows.
    """
    known = (record or {}).get("batches", {})
    sources = [source for source in column_mapping.values() if source]
    plan: dict[str, Any] = {"batches": [], "unchanged": [], "refused": []}
    frames, first_row = [], 0
    nested = sorted(name for name in landing if "/" in name)
    if nested:
        logger.info(
            "%d file(s) in folders under the landing folder are not batches (an archive?),"
            " left alone: %s",
            len(nested),
            nested[:5],
        )
    for name in sorted(set(landing) - set(nested)):
        if not BATCH_NAME.match(name):
            raise ValueError(
                f"Landed file {name!r}: a batch name (the file name without .csv) may hold"
                " letters, digits, '.', '_' and '-' only, starting with a letter or digit;"
                " rename the file."
            )
        frame = landing[name]()
        digest = table_digest(frame)
        if digest in _known_digests(known.get(name)):
            plan["unchanged"].append(name)
            continue
        missing = [source for source in sources if source not in frame.columns]
        if missing:
            plan["refused"].append(
                {
                    "name": name,
                    "digest": digest,
                    "rows_in": len(frame),
                    "reason": f"lacks the mapped column(s) {missing}; its columns are"
                    f" {[str(c) for c in frame.columns]}",
                }
            )
            continue
        status = CORRECTED if name in known else APPENDED
        plan["batches"].append(
            {
                "name": name,
                "digest": digest,
                "first_row": first_row,
                "rows_in": len(frame),
                "status": status,
            }
        )
        frames.append(frame)
        first_row += len(frame)
    if not frames:
        return pd.DataFrame({source: pd.Series(dtype=object) for source in sources}), plan
    logger.info(
        "Ingesting %d batch(es) (%s rows): %s; unchanged: %s",
        len(frames),
        f"{first_row:,}",
        ", ".join(f"{b['name']} ({b['status']})" for b in plan["batches"]),
        ", ".join(plan["unchanged"]) or "none",
    )
    return pd.concat(frames, ignore_index=True), plan


def batch_of_rows(source_rows: pd.Series, plan: dict[str, Any]) -> np.ndarray:
    """The batch name of each row (by its ``source_row`` in the combined table)."""
    batches = plan["batches"]
    starts = np.array([b["first_row"] for b in batches], dtype=np.int64)
    names = np.array([b["name"] for b in batches], dtype=object)
    position = np.searchsorted(starts, source_rows.to_numpy(dtype=np.int64), side="right") - 1
    return names[position] if len(names) else np.empty(0, dtype=object)


def _own_rows(rows: pd.DataFrame, batch: dict[str, Any]) -> pd.DataFrame:
    """A batch's rows, numbered from 0 in its own file (``source_row``)."""
    own = rows.reset_index(drop=True)
    own[SOURCE_ROW] = own[SOURCE_ROW].to_numpy(dtype=np.int64) - batch["first_row"]
    return own


def _times(clean: pd.DataFrame) -> tuple[str | None, str | None]:
    """The first and last event time (UTC ISO) of clean rows, None when there are none."""
    if clean.empty:
        return None, None
    times = clean[EVENT_TIME]
    return times.min().isoformat(), times.max().isoformat()


def file_batches(  # noqa: PLR0913, PLR0917 - the node's inputs
    clean: pd.DataFrame,
    rejected: pd.DataFrame,
    plan: dict[str, Any],
    record: dict[str, Any] | None,
    params: dict[str, Any],
    source_timezone: str,
    *,
    now: pd.Timestamp | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, Any]]:
    """Each batch's clean rows for the event history (by local date), its rejected rows for
    the quarantine, and the updated record.

    A batch whose rejected share is above ``ingestion.max_rejected_fraction`` is refused: none
    of its rows reach the history (a refused correction leaves the batch's earlier rows in
    place), its rejected rows are still quarantined, and the record says why.
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    batches = dict((record or {}).get("batches", {}))
    clean_batch = pd.Series(batch_of_rows(clean[SOURCE_ROW], plan), index=clean.index)
    rejected_batch = pd.Series(batch_of_rows(rejected[SOURCE_ROW], plan), index=rejected.index)
    clean_groups = dict(tuple(clean.groupby(clean_batch, sort=False)))
    rejected_groups = dict(tuple(rejected.groupby(rejected_batch, sort=False)))
    history: dict[str, pd.DataFrame] = {}
    quarantine: dict[str, pd.DataFrame] = {}
    run = {"at": now.isoformat(), "rows_added": 0, "rows_replaced": 0}
    run |= {APPENDED: [], CORRECTED: [], REFUSED: [], UNCHANGED: list(plan["unchanged"])}
    for batch in plan["batches"]:
        name = batch["name"]
        good = _own_rows(clean_groups.get(name, clean.iloc[:0]), batch)
        bad = _own_rows(rejected_groups.get(name, rejected.iloc[:0]), batch)
        quarantine[f"batch={name}"] = bad
        entry = _batch_entry(batch, good, bad, now)
        reason = _refusal(entry, params["max_rejected_fraction"])
        if reason:
            _refuse(batches, entry | {"reason": reason})
            run[REFUSED].append(name)
            continue
        local = good[EVENT_TIME].dt.tz_convert(source_timezone).dt.strftime("%Y-%m-%d")
        history[name] = good.assign(**{LOCAL_DATE: local.to_numpy()})
        entry["partitions"] = sorted(partition_key(d, name) for d in local.unique())
        entry["status"] = APPENDED
        earlier = batches.get(name) or {}
        run["rows_replaced"] += (
            earlier.get("rows_clean", 0) if earlier.get("status") == APPENDED else 0
        )
        run["rows_added"] += len(good)
        run[batch["status"]].append(name)
        batches[name] = entry
    for refused in plan["refused"]:
        _refuse(batches, refused | {"ingested_at": now.isoformat()})
        run[REFUSED].append(refused["name"])
    updated = {
        "updated_at": now.isoformat(),
        "batches": dict(sorted(batches.items())),
        "history_rows": sum(
            b.get("rows_clean", 0) for b in batches.values() if b.get("status") == APPENDED
        ),
        "last_run": run,
    }
    logger.info(
        "Ingestion: %s rows added (%s replaced); appended %s, corrected %s, unchanged %s,"
        " refused %s",
        f"{run['rows_added']:,}",
        f"{run['rows_replaced']:,}",
        run[APPENDED] or "none",
        run[CORRECTED] or "none",
        run[UNCHANGED] or "none",
        run[REFUSED] or "none",
    )
    return history, quarantine, updated


def _batch_entry(
    batch: dict[str, Any], good: pd.DataFrame, bad: pd.DataFrame, now: pd.Timestamp
) -> dict[str, Any]:
    """A batch's record entry: its rows in, clean and rejected (by reason), event-time range."""
    first, last = _times(good)
    return {
        "name": batch["name"],
        "digest": batch["digest"],
        "rows_in": batch["rows_in"],
        "rows_clean": len(good),
        "rows_rejected": len(bad),
        "rejected_by_reason": {
            str(k): int(v) for k, v in bad[REJECT_REASON].value_counts().items() if v
        },
        "first_event_utc": first,
        "last_event_utc": last,
        "ingested_at": now.isoformat(),
    }


def _refusal(entry: dict[str, Any], max_rejected_fraction: float) -> str | None:
    """Why a cleaned batch is refused (its share gate, or nothing clean), None if it is not."""
    if not entry["rows_clean"]:
        return "no clean row"
    share = entry["rows_rejected"] / entry["rows_in"]
    if share > max_rejected_fraction:
        return (
            f"rejected {entry['rows_rejected']:,} of {entry['rows_in']:,} rows ({share:.1%}),"
            f" above ingestion.max_rejected_fraction={max_rejected_fraction:.1%}"
        )
    return None


def _refuse(batches: dict[str, dict[str, Any]], entry: dict[str, Any]) -> None:
    """Record a refused batch: on its own, or beside the rows an earlier version left."""
    name = entry["name"]
    logger.warning("Batch %s refused: %s", name, entry["reason"])
    earlier = batches.get(name)
    if earlier and earlier.get("status") == APPENDED:
        batches[name] = earlier | {"last_refused": entry}
    else:
        batches[name] = entry | {"status": REFUSED}


def newest_end(record: dict[str, Any] | None, now: pd.Timestamp) -> pd.Timestamp | None:
    """The hour after the newest complete hour of the ingested events (None before any
    ingestion): the newest event's hour counts as complete (a batch is taken to hold every
    event of the hours it reaches, as monitoring takes a recent window) once it has ended by
    ``now``; an hour still running is not."""
    lasts = [
        b["last_event_utc"]
        for b in (record or {}).get("batches", {}).values()
        if b.get("status") == APPENDED and b.get("last_event_utc")
    ]
    if not lasts:
        return None
    newest = max(pd.Timestamp(t) for t in lasts).tz_convert("UTC")
    return min(newest.floor("h") + _HOUR, now.tz_convert("UTC").floor("h"))


def publish_counts_state(
    history: dict[str, Callable[[], pd.DataFrame]],
    record: dict[str, Any],
    params: dict[str, Any],
    resolution: int,
    *,
    now: pd.Timestamp | None = None,
) -> CountsState | NothingToPublish:
    """Events per (H3 cell at ``resolution``, UTC hour) over the last
    ``ingestion.counts_state_weeks`` weeks of the event history, up to ``newest_end``.

    Only partitions whose local date can fall in the window are read (a day of margin for
    the offset between local dates and UTC hours).
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    end = newest_end(record, now)
    if end is None:
        return NothingToPublish("no batch has been ingested yet")
    start = end - pd.Timedelta(weeks=params["counts_state_weeks"])
    first_date = (start - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    keys = [key for key in sorted(history) if parse_partition_key(key)[0] >= first_date]
    if not keys:
        raise ValueError(
            f"The ingestion record has events up to {end.isoformat()}, but the event history"
            f" has no partition from local date {first_date} on: restore the history, or"
            " remove the record to ingest the landed batches again."
        )
    events = pd.concat([history[key]() for key in keys], ignore_index=True)
    times = events[EVENT_TIME]
    events = events.loc[(times >= start) & (times < end)]
    batches = sorted({parse_partition_key(key)[1] for key in keys})
    counts = count_cell_hours(events, resolution)
    logger.info(
        "Counts state: %s events in %s cell-hours, %s .. %s UTC, from %d batch(es)",
        f"{len(events):,}",
        f"{len(counts):,}",
        start.isoformat(),
        end.isoformat(),
        len(batches),
    )
    return counts_state(counts, end, batches, published_at=now)
