"""Dirty rows on purpose: one fault per spoiled row, labelled with the row it spoils."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.schemas import (
    COORDINATES_OUT_OF_RANGE,
    DUPLICATE_ORDER,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    FUTURE_TIMESTAMP,
    MISSING_VALUE,
    ORDER_CREATED,
    PING_BEFORE_ORDER_CREATION,
    SWAPPED_COORDINATES,
    UNPARSABLE_TIMESTAMP,
    VENUE_LAT,
    VENUE_LON,
)

logger = logging.getLogger(__name__)

#: The cleaning reason each injected fault must be quarantined with.
FAULT_TO_REASON = {
    "missing_value": MISSING_VALUE,
    "coordinates_out_of_range": COORDINATES_OUT_OF_RANGE,
    "swapped_coordinates": SWAPPED_COORDINATES,
    "unparsable_timestamp": UNPARSABLE_TIMESTAMP,
    "future_timestamp": FUTURE_TIMESTAMP,
    "ping_before_order_creation": PING_BEFORE_ORDER_CREATION,
    "duplicate_order": DUPLICATE_ORDER,
}
_GARBAGE_TIMESTAMPS = np.array(
    ["not a timestamp", "2026-02-30 12:00:00", "31/31/2026 99:99", "yesterday"]
)


def inject_faults(
    events: pd.DataFrame, params: dict[str, Any], rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spoil a share of rows, one fault each, and label them by their row in the output."""
    mix = params["dirty_mix"]
    kinds = list(mix)
    weights = np.array([mix[k] for k in kinds], dtype=float)
    n_dirty = round(params["dirty_fraction"] * len(events))
    per_kind = dict(zip(kinds, rng.multinomial(n_dirty, weights / weights.sum()), strict=True))
    logger.info(
        "Spoiling %s of %s rows: %s",
        f"{n_dirty:,}",
        f"{len(events):,}",
        {kind: int(count) for kind, count in per_kind.items()},
    )
    n_in_place = n_dirty - per_kind.get("duplicate_order", 0)
    chosen = rng.choice(len(events), size=n_dirty, replace=False)
    in_place, duplicate_sources = chosen[:n_in_place], chosen[n_in_place:]

    # Timestamps leave the generator as text: the form the raw export has, and the only form
    # that can carry an unparsable value. `assign` is a lazy copy (pandas copy-on-write): only
    # the columns that get spoiled are copied.
    out = events.assign(
        **{
            col: np.datetime_as_string(events[col].to_numpy().astype("datetime64[s]"), unit="s")
            for col in (EVENT_TIME, ORDER_CREATED)
        }
    )
    labels, start = [], 0
    for kind in kinds:
        if kind == "duplicate_order":
            continue
        rows = in_place[start : start + per_kind[kind]]
        start += per_kind[kind]
        _spoil(out, rows, kind, rng)
        labels.append(pd.DataFrame({"source_row": rows, "fault": kind}))
    # Re-sent records: exact copies of valid rows, arriving after the originals.
    copies = np.arange(len(out), len(out) + len(duplicate_sources))
    labels.append(pd.DataFrame({"source_row": copies, "fault": "duplicate_order"}))
    out = pd.concat([out, out.iloc[duplicate_sources]], ignore_index=True)
    fault_labels = (
        pd.concat(labels, ignore_index=True)
        .astype({"source_row": np.int64, "fault": str})
        .sort_values("source_row", ignore_index=True)
    )
    return out, fault_labels


def _spoil(events: pd.DataFrame, rows: np.ndarray, kind: str, rng: np.random.Generator) -> None:
    """Apply one kind of fault to the given rows, in place."""
    if len(rows) == 0:
        return
    idx = events.index[rows]
    if kind == "missing_value":
        columns = np.array([EVENT_TIME, EVENT_LAT, EVENT_LON, ORDER_CREATED, VENUE_LAT, VENUE_LON])
        picked = rng.choice(columns, size=len(rows))
        for col in columns:
            events.loc[idx[picked == col], col] = (
                None if col in (EVENT_TIME, ORDER_CREATED) else np.nan
            )
    elif kind == "coordinates_out_of_range":
        events.loc[idx, EVENT_LAT] = rng.choice([-1, 1], len(rows)) * rng.uniform(
            91, 180, len(rows)
        )
    elif kind == "swapped_coordinates":
        events.loc[idx, [EVENT_LAT, EVENT_LON]] = events.loc[idx, [EVENT_LON, EVENT_LAT]].to_numpy()
    elif kind == "unparsable_timestamp":
        events.loc[idx, EVENT_TIME] = rng.choice(_GARBAGE_TIMESTAMPS, len(rows))
    elif kind in ("future_timestamp", "ping_before_order_creation"):
        ping = pd.to_datetime(events.loc[idx, EVENT_TIME])
        created = pd.to_datetime(events.loc[idx, ORDER_CREATED])
        if kind == "future_timestamp":
            ping, created = ping + pd.DateOffset(years=75), created + pd.DateOffset(years=75)
        else:
            ping = created - pd.to_timedelta(rng.integers(60, 1800, len(rows)), unit="s")
        events.loc[idx, EVENT_TIME] = ping.dt.strftime("%Y-%m-%dT%H:%M:%S")
        events.loc[idx, ORDER_CREATED] = created.dt.strftime("%Y-%m-%dT%H:%M:%S")
    else:
        raise ValueError(
            f"Unknown fault kind {kind!r} in data_generation.dirty_mix; known: {sorted(FAULT_TO_REASON)}"
        )
