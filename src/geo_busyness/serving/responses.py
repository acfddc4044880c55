"""Answers -> response bodies (JSON or CSV), shared by the project's server and ``code/inference.py``."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from geo_busyness.schemas import H3_CELL, HORIZON, HOUR, INTERVAL_COLUMNS, PREDICTION
from geo_busyness.serving.requests import CSV, JSON, RequestError

#: Every answer's columns, in order: the cell and UTC hour asked, the mean forecast, its
#: P10/P50/P90 and the hours from the model's origin to the hour asked.
ANSWER_COLUMNS = (H3_CELL, HOUR, PREDICTION, *INTERVAL_COLUMNS, HORIZON)


def response_type(accept: str | None) -> str:
    """The media type to answer in for an Accept header: JSON unless only CSV is acceptable."""
    if not accept:
        return JSON
    offered = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    for media in offered:
        if media in (JSON, "*/*", "application/*"):
            return JSON
        if media in (CSV, "text/*", "application/csv"):
            return CSV
    raise RequestError(406, f"Cannot answer in {accept!r}; accept {JSON} or {CSV}.")


def iso_hours(hours: pd.Series) -> list[str]:
    """UTC hour starts as ISO 8601 text ('2026-01-05T12:00:00Z'), vectorised through numpy."""
    index = pd.DatetimeIndex(hours)
    # asi8 counts from the epoch in UTC for aware values; naive values are UTC by convention.
    values = index.asi8.astype(f"datetime64[{index.unit}]").astype("datetime64[s]")
    return np.datetime_as_string(values, unit="s", timezone="UTC").tolist()


def answer_columns(answers: pd.DataFrame) -> dict[str, list]:
    """``ANSWER_COLUMNS`` as lists of JSON-ready values (cell names, ISO hours, floats, ints)."""
    return {
        H3_CELL: answers[H3_CELL].astype(str).tolist(),
        HOUR: iso_hours(answers[HOUR]),
        **{
            name: answers[name].to_numpy(dtype=float).tolist()
            for name in (PREDICTION, *INTERVAL_COLUMNS)
        },
        HORIZON: answers[HORIZON].to_numpy(dtype=np.int64).tolist(),
    }


def encode_predictions(answers: pd.DataFrame, media: str = JSON) -> bytes:
    """``{"predictions": [{"h3_cell", "hour", "predicted_busyness", "p10", "p50", "p90",
    "horizon_hours"}, ...]}`` or a CSV table with those columns.

    Floats are written with the shortest text that reads back to the same double, so a client
    gets exactly the numbers ``predict_busyness`` returned; the horizon is a whole number.
    """
    columns = answer_columns(answers)
    if media == CSV:
        return pd.DataFrame(columns).to_csv(index=False, lineterminator="\n").encode()
    rows = zip(*columns.values(), strict=True)
    records = [dict(zip(ANSWER_COLUMNS, row, strict=True)) for row in rows]
    return orjson.dumps({"predictions": records})


def encode_error(status: int, message: str) -> bytes:
    """The JSON body of an error answer."""
    return orjson.dumps({"error": message, "status": status})
