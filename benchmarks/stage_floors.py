"""Each step of processing + features timed as the pipelines do it and at its floor.

``stage_floors`` reads a project copy's raw Parquet file and times, in this process, every
step that grows with the events: how the pipelines do it ("ours": the same functions their
nodes call) and the least the library at hand needs to give the same result ("floor"). Wall
and CPU seconds of each (CPU counts every thread of this process: the load of other jobs
moves it less than wall time). ``benchmarks/pipeline_stages.py`` prints the block and writes
it to its JSON.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from h3ronpy import vector
from kedro.config import OmegaConfigLoader

from geo_busyness.datasets import ParquetDataset
from geo_busyness.model.cell_hours import HOUR_NS, count_pairs, utc_hour_ns
from geo_busyness.model.event_summary import (
    EventValues,
    event_codes,
    event_values,
    fit_window,
    summarise_events,
)
from geo_busyness.model.features import BusynessFeatures, cell_feature_params
from geo_busyness.model.geo import euclidean_deg, h3_cells, haversine_km
from geo_busyness.pipelines.data_processing import nodes as processing
from geo_busyness.pipelines.feature_engineering.nodes import define_time_windows, window_bounds
from geo_busyness.schemas import (
    COORDINATE_COLUMNS,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    LAT_LIMIT,
    LON_LIMIT,
    ORDER_CREATED,
    SOURCE_ROW,
    TIMESTAMP_COLUMNS,
    VENUE_LAT,
    VENUE_LON,
    CanonicalEvents,
    CleanEvents,
)

#: What each stage's floor is, as printed.
FLOOR_IS = {
    "read": "pyarrow.parquet.read_table (Arrow columns, no pandas conversion; ours: the"
    " project's ParquetDataset, as the benchmark's raw_events)",
    "parse timestamps": "pyarrow.compute.cast of both columns to timestamp[us] (Arrow's strict ISO"
    " parse, as ours; values it refuses nulled beforehand, untimed)",
    "split": "numpy: every kept column compressed by the clean rows' mask (ours: the cleaning"
    " node less the parse row's seconds: rules, duplicate orders, restaurant ids, the clean and"
    " rejected tables)",
    "validate": "numpy: null and range reductions of the checked columns, source_row increasing",
    "H3": "one h3ronpy coordinates_to_cells call (one thread)",
    "count": "np.bincount of precomputed int64 (cell, hour) keys",
    "distances": "numpy: the Euclidean and Haversine distances, once each",
    "summarise": "np.bincount of precomputed int64 (cell, restaurant) keys: events and both"
    " distance sums, all events and the train window's (ours: the node's two summarise_events"
    " calls on its precomputed cells, hours and distances, with their cell-hour counts)",
    "write": "pyarrow.parquet.write_table of the clean table (snappy)",
}


#: How the benchmark's ``raw_events`` reads the raw file: one pandas column per Arrow column,
#: each freed once converted, instead of copying all of them into 2-D blocks (the columns are
#: then read-only views of Arrow's memory, which suits a table that is only read).
RAW_LOAD_ARGS = {"to_pandas_kwargs": {"split_blocks": True, "self_destruct": True}}
#: The per-event distance columns of ``EventValues`` the summaries add up.
DISTANCE_UNITS = ("dist_units", "hdist_units")


#: The parse floor's description when the strict cast refuses a value strptime takes.
STRPTIME_FLOOR = "pyarrow.compute.strptime of both columns (fixed format, no checks)"


def timed(work: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """``work(*args)``, its wall seconds and this process's CPU seconds (all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def project_parameters(project: Path) -> dict[str, Any]:
    """A project copy's parameters as a run would see them (base + local, merged softly)."""
    loader = OmegaConfigLoader(
        str(project / "conf"),
        base_env="base",
        default_run_env="local",
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"]


def stage_floors(project: Path, raw_file: Path, n: int) -> list[dict[str, Any]]:
    """One row per stage for the ``n`` events of ``raw_file`` (the copy at ``project``): the
    pipelines' wall and CPU seconds, the floor's, and the load average before the stage."""
    parameters = project_parameters(project)
    params = parameters["data_processing"]
    rows: list[dict[str, Any]] = []

    def record(
        stage: str, ours: tuple, floor: tuple, load: float, floor_is: str | None = None
    ) -> None:
        rows.append(
            {
                "events": n,
                "stage": stage,
                "ours_s": round(ours[1], 3),
                "ours_cpu_s": round(ours[2], 3),
                "floor_s": round(floor[1], 3),
                "floor_cpu_s": round(floor[2], 3),
                "floor_is": floor_is or FLOOR_IS[stage],
                "load_1min": round(load, 2),
            }
        )

    raw_file.read_bytes()  # into the page cache: neither reader pays the first disk read
    load = os.getloadavg()[0]
    floor = timed(pq.read_table, raw_file)
    arrow = floor[0]
    ours = timed(_read_as_ours, raw_file)
    record("read", ours, floor, load)
    canonical = processing.map_to_canonical(ours[0], params["column_mapping"])

    load = os.getloadavg()[0]
    texts = [arrow[params["column_mapping"][col]] for col in TIMESTAMP_COLUMNS]
    floor, floor_is = _parse_floor(texts)
    ours = timed(_parse_as_ours, [canonical[col] for col in TIMESTAMP_COLUMNS], params)
    record("parse timestamps", ours, floor, load, floor_is)
    arrow = texts = floor = None  # free the copies before the next stages

    load = os.getloadavg()[0]
    clean, ours, floor = _split_as_ours_and_floor(canonical, params, parse=ours)
    record("split", ours, floor, load)
    load = os.getloadavg()[0]
    ours = timed(_validate_as_ours, canonical, clean)
    floor = timed(_check_floor, canonical, clean)
    record("validate", ours, floor, load)
    canonical = None

    lat, lon = (clean[col].to_numpy(dtype=float) for col in (EVENT_LAT, EVENT_LON))
    load = os.getloadavg()[0]
    ours = timed(h3_cells, lat, lon, 7)
    floor = timed(vector.coordinates_to_cells, lat, lon, 7)
    record("H3", ours, floor, load)
    cells = ours[0]

    load = os.getloadavg()[0]
    ours, floor = _count_timings(cells, clean)
    record("count", ours, floor, load)

    venue_lat, venue_lon = (
        clean[col].to_numpy(float, na_value=np.nan) for col in (VENUE_LAT, VENUE_LON)
    )
    load = os.getloadavg()[0]
    ours = timed(event_values, clean)
    floor = timed(_distances_floor, lat, lon, venue_lat, venue_lon)
    record("distances", ours, floor, load)

    load = os.getloadavg()[0]
    record("summarise", *_summarise_timings(clean, parameters, cells, ours[0]), load)

    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "clean.parquet"
        load = os.getloadavg()[0]
        ours = timed(clean.to_parquet, target)  # what the clean_events dataset does
        table = pa.Table.from_pandas(clean, preserve_index=False)
        floor = timed(pq.write_table, table, target)
        record("write", ours, floor, load)
    return rows


def _read_as_ours(raw_file: Path) -> pd.DataFrame:
    """The raw file read as the benchmark's ``raw_events`` reads it (the project's dataset)."""
    return ParquetDataset(filepath=str(raw_file), load_args=RAW_LOAD_ARGS).load()


def _castable(text: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """``text`` with the values that are not 'YYYY-MM-DDTHH:MM:SS' times nulled, so that Arrow's
    strict cast takes the whole column (None if it still refuses one, e.g. Feb 30)."""
    parsed = pc.strptime(text, "%Y-%m-%dT%H:%M:%S", "us", error_is_null=True)
    kept = pc.if_else(pc.is_valid(parsed), text, pa.scalar(None, text.type))
    try:
        pc.cast(kept, pa.timestamp("us"))
    except pa.ArrowInvalid:
        return None
    return kept


def _parse_floor(texts: list[pa.ChunkedArray]) -> tuple[tuple, str | None]:
    """The timed floor of parsing ``texts`` and what it is when not ``FLOOR_IS``'s cast."""
    castable = [_castable(text) for text in texts]
    if all(text is not None for text in castable):
        return timed(_cast_floor, castable), None
    # Text strptime takes but the strict cast refuses: strptime is the floor.
    return timed(_strptime_floor, texts), STRPTIME_FLOOR


def _cast_floor(texts: list[pa.ChunkedArray]) -> list[pa.ChunkedArray]:
    """Arrow's strict ISO cast of each timestamp column, nothing else checked."""
    return [pc.cast(text, pa.timestamp("us")) for text in texts]


def _strptime_floor(texts: list[pa.ChunkedArray]) -> list[pa.ChunkedArray]:
    """Arrow's parse of each timestamp column, nothing checked."""
    return [pc.strptime(text, "%Y-%m-%dT%H:%M:%S", "us", error_is_null=True) for text in texts]


def _parse_as_ours(columns: list[pd.Series], params: dict[str, Any]) -> list[tuple]:
    """The cleaning node's parse of each timestamp column (checks and time zone included)."""
    return [
        processing._parse_timestamps(  # noqa: SLF001 - the node's own parse, timed alone
            column, params["timestamp_format"], params["source_timezone"]
        )
        for column in columns
    ]


def _validate_as_ours(canonical: pd.DataFrame, clean: pd.DataFrame) -> None:
    """The catalog's two validators (canonical_events and clean_events, on save)."""
    CanonicalEvents.validate(canonical)
    CleanEvents.validate(clean)


def _count_timings(cells: np.ndarray, clean: pd.DataFrame) -> tuple[tuple, tuple]:
    """The timed count as feature_engineering makes it, and its floor (keys precomputed)."""
    ours = timed(_count_as_ours, cells, clean)
    hours = clean[EVENT_TIME].array.asi8 // HOUR_NS
    keys = pd.factorize(cells)[0].astype(np.int64) * (int(np.ptp(hours)) + 1) + hours - hours.min()
    return ours, timed(np.bincount, keys)


def _count_as_ours(cells: np.ndarray, clean: pd.DataFrame) -> tuple:
    """Cell-hour counts as feature_engineering makes them (hours from the timestamps)."""
    return count_pairs(cells, utc_hour_ns(clean[EVENT_TIME]))


def _distances_floor(lat, lon, venue_lat, venue_lon) -> tuple[np.ndarray, np.ndarray]:
    """Both ping-to-restaurant distances, once each."""
    return euclidean_deg(lat, lon, venue_lat, venue_lon), haversine_km(
        lat, lon, venue_lat, venue_lon
    )


def _split_floor(canonical: pd.DataFrame, keep: np.ndarray) -> list[np.ndarray]:
    """Every column the clean table keeps as it is (not the parsed timestamps), compressed by
    the clean rows' mask."""
    kept = [col for col in canonical.columns if col not in TIMESTAMP_COLUMNS]
    return [canonical[col].to_numpy()[keep] for col in kept]


def _split_as_ours_and_floor(
    canonical: pd.DataFrame, params: dict[str, Any], *, parse: tuple
) -> tuple[pd.DataFrame, tuple, tuple]:
    """The clean table, the cleaning node's timing less the parse row's (``parse``) and the
    split's floor (the clean rows' mask found untimed)."""
    area = processing.service_area(canonical, params)
    split = timed(processing.split_clean_and_rejected, canonical, params, area)
    clean = split[0][0]
    ours = (None, max(split[1] - parse[1], 0.0), max(split[2] - parse[2], 0.0))
    keep = np.zeros(len(canonical), dtype=bool)
    keep[clean[SOURCE_ROW].to_numpy()] = True
    return clean, ours, timed(_split_floor, canonical, keep)


@dataclass(frozen=True)
class SummaryInputs:
    """What ``window_and_summarise_events`` has before its two summaries."""

    events: pd.DataFrame
    settings: dict[str, Any]
    span: tuple[pd.Timestamp, pd.Timestamp]
    train: tuple[pd.Timestamp, pd.Timestamp]
    inside: np.ndarray
    cells: np.ndarray
    hours: np.ndarray
    distances: EventValues


def _summarise_inputs(
    clean: pd.DataFrame,
    parameters: dict[str, Any],
    cells: np.ndarray,
    hours: np.ndarray,
    values: EventValues,
) -> SummaryInputs:
    """The node's summary settings, both windows and the train mask, beside the events' cells,
    hours (``utc_hour_ns``) and distances (``event_values``)."""
    params = parameters["feature_engineering"]
    windows = define_time_windows(clean, params, parameters["data_processing"]["source_timezone"])
    features = BusynessFeatures(**cell_feature_params(params))
    settings = {
        "resolution": features.resolution,
        "max_anchor_points": features.max_anchor_points,
        "seed": features.random_state,
    }
    span = (pd.Timestamp(hours.min(), tz="UTC"), pd.Timestamp(hours.max() + HOUR_NS, tz="UTC"))
    start, end = fit_window(*window_bounds(windows, "train"))
    inside = (hours >= start.value) & (hours < end.value)
    return SummaryInputs(clean, settings, span, (start, end), inside, cells, hours, values)


def _summarise_timings(
    clean: pd.DataFrame, parameters: dict[str, Any], cells: np.ndarray, distances: EventValues
) -> tuple[tuple, tuple]:
    """The timed summaries as the node makes them, and their floor."""
    inputs = _summarise_inputs(clean, parameters, cells, utc_hour_ns(clean[EVENT_TIME]), distances)
    venues, distinct = pd.factorize(distances.venues)
    keys = pd.factorize(cells)[0].astype(np.int64) * len(distinct) + venues  # untimed
    return timed(_summarise_as_ours, inputs), timed(_summarise_floor, inputs, keys)


def _summarise_as_ours(inputs: SummaryInputs) -> tuple:
    """The node's numbering of cells and restaurants and its two summaries (all, train)."""
    codes = event_codes(inputs.cells, inputs.distances.venues)
    common = {
        "cells": inputs.cells,
        "hours": inputs.hours,
        "values": inputs.distances,
        "codes": codes,
        **inputs.settings,
    }
    everything = summarise_events(inputs.events, window=inputs.span, **common)
    train = summarise_events(inputs.events, window=inputs.train, where=inputs.inside, **common)
    return everything, train


def _summarise_floor(inputs: SummaryInputs, keys: np.ndarray) -> list[np.ndarray]:
    """Per (cell, restaurant) key (``keys``, precomputed): events and both distance sums, all
    events and the train window's."""
    sums = []
    for where in (slice(None), inputs.inside):
        key = keys[where]
        sums.append(np.bincount(key))
        sums += [
            np.bincount(key, getattr(inputs.distances, name)[where]) for name in DISTANCE_UNITS
        ]
    return sums


def _check_floor(canonical: pd.DataFrame, clean: pd.DataFrame) -> bool:
    """The validators' checks as plain numpy reductions: what checking them must touch."""
    ok = bool(np.all(np.diff(canonical[SOURCE_ROW].to_numpy()) > 0))
    for col, limit in zip(COORDINATE_COLUMNS, (LAT_LIMIT, LON_LIMIT) * 2, strict=True):
        values = clean[col].to_numpy(dtype=float, na_value=np.nan)
        ok &= bool(np.nanmin(values) >= -limit and np.nanmax(values) <= limit)
    created, ping = (clean[col].array.asi8 for col in (ORDER_CREATED, EVENT_TIME))
    return ok and not bool((created > ping).any())


def floors_table(rows: list[dict[str, Any]]) -> str:
    """The floors block as a markdown table, with each N's totals."""
    lines = [
        "| events | stage | ours s | ours CPU s | floor s | floor CPU s | ours / floor (CPU) "
        "| floor | load 1 min |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for n in dict.fromkeys(r["events"] for r in rows):
        of_n = [r for r in rows if r["events"] == n]
        total = {
            key: sum(r[key] for r in of_n)
            for key in ("ours_s", "ours_cpu_s", "floor_s", "floor_cpu_s")
        }
        for r in [
            *of_n,
            {"events": n, "stage": "**all**", **total, "floor_is": "", "load_1min": None},
        ]:
            ratio = f"{r['ours_cpu_s'] / r['floor_cpu_s']:.1f}x" if r["floor_cpu_s"] else "-"
            load = "" if r["load_1min"] is None else f"{r['load_1min']:.1f}"
            lines.append(
                f"| {r['events']:,} | {r['stage']} | {r['ours_s']:.2f} | {r['ours_cpu_s']:.2f} | "
                f"{r['floor_s']:.2f} | {r['floor_cpu_s']:.2f} | {ratio} | {r['floor_is']} "
                f"| {load} |"
            )
    return "\n".join(lines)
