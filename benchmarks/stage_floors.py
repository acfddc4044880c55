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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from h3ronpy import vector
from kedro.config import OmegaConfigLoader

from geo_busyness.model.cell_hours import HOUR_NS, count_pairs, utc_hour_ns
from geo_busyness.model.event_summary import event_values
from geo_busyness.model.geo import euclidean_deg, h3_cells, haversine_km
from geo_busyness.pipelines.data_processing import nodes as processing
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
    "read": "pyarrow.parquet.read_table (Arrow columns, no pandas conversion)",
    "parse timestamps": "pyarrow.compute.cast of both columns to timestamp[us] (Arrow's strict ISO"
    " parse, as ours; values it refuses nulled beforehand, untimed)",
    "validate": "numpy: null and range reductions of the checked columns, source_row increasing",
    "H3": "one h3ronpy coordinates_to_cells call (one thread)",
    "count": "np.bincount of precomputed int64 (cell, hour) keys",
    "distances": "numpy: the Euclidean and Haversine distances, once each",
    "write": "pyarrow.parquet.write_table of the clean table (snappy)",
}


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
    params = project_parameters(project)["data_processing"]
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
    ours = timed(pd.read_parquet, raw_file)  # what pandas.ParquetDataset does
    record("read", ours, floor, load)
    canonical = processing.map_to_canonical(ours[0], params["column_mapping"])

    load = os.getloadavg()[0]
    texts = [arrow[params["column_mapping"][col]] for col in TIMESTAMP_COLUMNS]
    floor, floor_is = _parse_floor(texts)
    ours = timed(_parse_as_ours, [canonical[col] for col in TIMESTAMP_COLUMNS], params)
    record("parse timestamps", ours, floor, load, floor_is)
    arrow = texts = ours = floor = None  # free the copies before the next stages

    clean, _ = processing.split_clean_and_rejected(
        canonical, params, processing.service_area(canonical, params)
    )
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
    ours = timed(_count_as_ours, cells, clean)
    hours = clean[EVENT_TIME].array.asi8 // HOUR_NS
    keys = pd.factorize(cells)[0].astype(np.int64) * (int(np.ptp(hours)) + 1) + hours - hours.min()
    floor = timed(np.bincount, keys)
    record("count", ours, floor, load)

    venue_lat, venue_lon = (
        clean[col].to_numpy(float, na_value=np.nan) for col in (VENUE_LAT, VENUE_LON)
    )
    load = os.getloadavg()[0]
    ours = timed(event_values, clean)
    floor = timed(_distances_floor, lat, lon, venue_lat, venue_lon)
    record("distances", ours, floor, load)

    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "clean.parquet"
        load = os.getloadavg()[0]
        ours = timed(clean.to_parquet, target)  # what the clean_events dataset does
        table = pa.Table.from_pandas(clean, preserve_index=False)
        floor = timed(pq.write_table, table, target)
        record("write", ours, floor, load)
    return rows


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


def _count_as_ours(cells: np.ndarray, clean: pd.DataFrame) -> tuple:
    """Cell-hour counts as feature_engineering makes them (hours from the timestamps)."""
    return count_pairs(cells, utc_hour_ns(clean[EVENT_TIME]))


def _distances_floor(lat, lon, venue_lat, venue_lon) -> tuple[np.ndarray, np.ndarray]:
    """Both ping-to-restaurant distances, once each."""
    return euclidean_deg(lat, lon, venue_lat, venue_lon), haversine_km(
        lat, lon, venue_lat, venue_lon
    )


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
