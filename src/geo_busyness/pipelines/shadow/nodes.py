"""Shadow scoring: the champion's and the challenger's logged answers against the actual counts.

``kedro serve --shadow`` logs, per prediction, the query's cell and hour and both models'
answers with the origin and horizon each answered from (``geo_busyness.serving.shadow``). The
log is read chunk by chunk (``ShadowLogDataset``: its rotated files, then the active one). Once
the events of those hours are cleaned, each logged row gets the actual count of its cell and
hour (each model's own cell: two models at different H3 resolutions answer for different
cells), and both models are scored on exactly the same rows, and only on rows answered like for
like (the same origin and horizon): MAE, RMSE, mean Poisson deviance and R² of the mean, MAE of
the P50.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
import pandas as pd

from geo_busyness.metrics import regression_metrics
from geo_busyness.model.cell_hours import count_pairs, to_utc_hours, utc_hour_ns
from geo_busyness.model.geo import cell_ids, h3_cells
from geo_busyness.schemas import (
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HORIZON,
    HOUR,
    PREDICTION,
)

logger = logging.getLogger(__name__)

SIDES = ("champion", "challenger")
#: What is kept of each model's logged answer (``origin``: null in lines logged before it was).
ANSWER_FIELDS = ("version", H3_CELL, PREDICTION, "p50", HORIZON, "origin")
VERSIONS = [f"{side}_version" for side in SIDES]
HORIZONS = [f"{side}_{HORIZON}" for side in SIDES]
ORIGINS = [f"{side}_origin" for side in SIDES]
#: Where a logged hour stands against the events: scored, not yet counted, or before them.
KNOWN, PENDING, BEFORE_DATA = "known", "pending", "before_data"


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One log line as a flat row (KeyError/TypeError when it is not a shadow line)."""
    row = {"request_time": record["request_time"], HOUR: record[HOUR]}
    for side in SIDES:
        answer = record[side]
        for name in ANSWER_FIELDS:
            row[f"{side}_{name}"] = answer.get("origin") if name == "origin" else answer[name]
    return row


def _parse_chunk(text: str) -> tuple[pd.DataFrame, int]:
    """One chunk of log lines as typed rows, and how many of its lines were unreadable."""
    rows, malformed = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(_flatten(orjson.loads(line)))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            malformed += 1
    columns = ["request_time", HOUR, *(f"{s}_{n}" for s in SIDES for n in ANSWER_FIELDS)]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("request_time", HOUR, *ORIGINS):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame[VERSIONS] = frame[VERSIONS].astype(str)
    frame[HORIZONS] = frame[HORIZONS].astype("Int64")
    return frame, malformed


def parse_shadow_log(log: str | Iterable[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The logged predictions, one row each, and how many lines were unreadable (e.g. the one
    the server is writing while this reads).

    ``log`` is the text, or its chunks (``ShadowLogDataset``): each chunk is parsed into typed
    columns before the next is read, so only the compact table grows with the log.
    """
    chunks = [log] if isinstance(log, str) else log
    frames, malformed = [], 0
    for chunk in chunks:
        frame, bad = _parse_chunk(chunk)
        frames.append(frame)
        malformed += bad
    frame = pd.concat(frames, ignore_index=True) if frames else _parse_chunk("")[0]
    if malformed:
        logger.warning("Skipped %d unreadable line(s) of the shadow log", malformed)
    return frame, {"logged_predictions": len(frame), "malformed_lines": malformed}


def like_for_like(rows: pd.DataFrame) -> pd.Series:
    """Rows both models answered from the same origin with the same horizon: the same horizon
    for the same hour, and the same origin wherever both logged one (an older line without
    origins is judged by its horizons)."""
    same_horizon = (rows[HORIZONS[0]] == rows[HORIZONS[1]]).fillna(False).astype(bool)
    champion, challenger = (rows[name] for name in ORIGINS)
    logged = champion.notna() & challenger.notna()
    same_origin = ~logged | (champion == challenger)
    return same_horizon & same_origin


def _resolution(cells: np.ndarray) -> np.ndarray:
    """H3 resolution of uint64 cells (bits 52-55 of the index, per the H3 index layout)."""
    return (cells >> np.uint64(52)) & np.uint64(0xF)


def count_at(cells: pd.Series, hours: pd.Series, events: pd.DataFrame) -> np.ndarray:
    """Events of ``events`` in each (hexadecimal H3 cell, UTC hour) pair, at each cell's own
    resolution (0 where none happened)."""
    ids = cell_ids(cells.to_numpy())
    keys = pd.MultiIndex.from_arrays([ids, utc_hour_ns(hours)])
    counts = np.zeros(len(ids), dtype=np.int64)
    event_hours = utc_hour_ns(events[EVENT_TIME])
    for resolution in np.unique(_resolution(ids)):
        event_cells = h3_cells(events[EVENT_LAT], events[EVENT_LON], int(resolution))
        cell, hour, count = count_pairs(event_cells, event_hours)
        table = pd.Series(count, index=pd.MultiIndex.from_arrays([cell, hour]))
        mine = _resolution(ids) == resolution
        counts[mine] = table.reindex(keys[mine], fill_value=0).to_numpy()
    return counts


def join_actual_counts(
    predictions: pd.DataFrame, events: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, str | None]]:
    """The logged rows with ``status`` (``known``: the events cover the hour; ``pending``: not
    yet; ``before_data``) and, for known rows, each model's ``<side>_actual`` count; and the
    hours the events cover.

    The events cover the UTC hours from their first one up to, not including, the hour of the
    last event (that hour may still be filling).
    """
    rows = predictions.copy()
    rows["status"] = PENDING
    for side in SIDES:
        rows[f"{side}_actual"] = np.nan
    if not len(events):
        return rows, {"actuals_from": None, "actuals_until": None}
    event_hours = to_utc_hours(events[EVENT_TIME])
    first, last = event_hours.min(), event_hours.max()
    rows.loc[rows[HOUR] < first, "status"] = BEFORE_DATA
    known = (rows[HOUR] >= first) & (rows[HOUR] < last)
    rows.loc[known, "status"] = KNOWN
    if known.any():
        hours = rows.loc[known, HOUR]
        window = events.loc[
            ((event_hours >= hours.min()) & (event_hours <= hours.max())).to_numpy()
        ]
        for side in SIDES:
            rows.loc[known, f"{side}_actual"] = count_at(
                rows.loc[known, f"{side}_{H3_CELL}"], hours, window
            )
    return rows, {"actuals_from": first.isoformat(), "actuals_until": last.isoformat()}


def side_metrics(rows: pd.DataFrame, side: str) -> dict[str, float | None]:
    """MAE, RMSE, mean Poisson deviance and R² of ``side``'s mean; MAE of its P50."""
    actual = rows[f"{side}_actual"].to_numpy(dtype=float)
    figures = regression_metrics(actual, rows[f"{side}_{PREDICTION}"].to_numpy(dtype=float))
    figures["mae_p50"] = float(np.mean(np.abs(actual - rows[f"{side}_p50"].to_numpy(float))))
    return {name: (value if np.isfinite(value) else None) for name, value in figures.items()}


def score_shadow(
    rows: pd.DataFrame,
    log_summary: dict[str, int],
    coverage: dict[str, str | None],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The report (per champion/challenger pair of versions, both scored on the same rows,
    answered like for like) and the latest pair's figures as MLflow metrics.

    A known row the two models answered from different origins or horizons is counted
    (``unmatched_rows``) and never scored: a model answering an hour it has already counted,
    1 h ahead, against one answering it days ahead says nothing about which forecasts better.
    """
    known = rows[rows["status"] == KNOWN]
    matched = like_for_like(known)
    unmatched = known[~matched]
    known = known[matched]
    if len(unmatched):
        logger.warning(
            "%d known shadow row(s) were answered from different origins or horizons: left out",
            len(unmatched),
        )
    if params.get("distinct_cell_hours", True):
        keys = [*VERSIONS, *(f"{side}_{H3_CELL}" for side in SIDES), HOUR]
        known = known.drop_duplicates(keys)
    pairs = []
    for (champion, challenger), group in known.groupby(VERSIONS, sort=False):
        scored = {side: side_metrics(group, side) for side in SIDES} if len(group) > 1 else {}
        pairs.append(
            {
                "champion_version": champion,
                "challenger_version": challenger,
                "rows": len(group),
                "last_request_time": group["request_time"].max().isoformat(),
                **scored,
                "challenger_better": {
                    name: scored["challenger"][name] < scored["champion"][name]
                    for name in ("mae", "mean_poisson_deviance")
                }
                if scored
                else None,
            }
        )
    pairs.sort(key=lambda pair: pair["last_request_time"])
    counts = rows["status"].value_counts()
    report = {
        **log_summary,
        "scored_rows": int(len(known)),
        "unmatched_rows": int(len(unmatched)),
        "distinct_cell_hours": bool(params.get("distinct_cell_hours", True)),
        "pending_rows": int(counts.get(PENDING, 0)),
        "before_data_rows": int(counts.get(BEFORE_DATA, 0)),
        **coverage,
        "pairs": pairs,
    }
    if not pairs:
        logger.warning("No logged shadow prediction has a known actual count yet: %s", report)
    return report, shadow_metrics(pairs[-1] if pairs else None)


def shadow_metrics(pair: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """The pair's figures as MLflow metrics ({"value": x, "step": 0}), e.g. ``champion.mae``
    (logged as ``shadow_metrics.champion.mae``); the versions too when they are numbers."""
    if not pair or "champion" not in pair:
        return {}
    values = {"rows": pair["rows"]}
    for side in SIDES:
        for name in ("mae", "mean_poisson_deviance", "mae_p50"):
            if pair[side][name] is not None:
                values[f"{side}.{name}"] = pair[side][name]
        if str(pair[f"{side}_version"]).isdigit():
            values[f"{side}.version"] = int(pair[f"{side}_version"])
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}
