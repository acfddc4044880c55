"""Answers -> response bodies (JSON or CSV), shared by the project's server and ``code/inference.py``."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from geo_busyness.schemas import H3_CELL, HOUR, PREDICTION
from geo_busyness.serving.requests import CSV, JSON, RequestError

ANSWER_COLUMNS = (H3_CELL, HOUR, PREDICTION)


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


def encode_predictions(answers: pd.DataFrame, media: str = JSON) -> bytes:
    """``{"predictions": [{"h3_cell", "hour", "predicted_busyness"}, ...]}`` or a CSV table.

    Floats are written with the shortest text that reads back to the same double, so a client
    gets exactly the numbers ``predict_busyness`` returned.
    """
    cells = answers[H3_CELL].astype(str).tolist()
    hours = iso_hours(answers[HOUR])
    values = answers[PREDICTION].to_numpy(dtype=float).tolist()
    if media == CSV:
        table = pd.DataFrame({H3_CELL: cells, HOUR: hours, PREDICTION: values})
        return table.to_csv(index=False, lineterminator="\n").encode()
    records = [
        {H3_CELL: cell, HOUR: hour, PREDICTION: value}
        for cell, hour, value in zip(cells, hours, values, strict=True)
    ]
    return orjson.dumps({"predictions": records})


def encode_error(status: int, message: str) -> bytes:
    """The JSON body of an error answer."""
    return orjson.dumps({"error": message, "status": status})
