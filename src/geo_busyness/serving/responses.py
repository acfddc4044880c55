"""Answers -> response bodies (JSON or CSV), shared by the project's server and ``code/inference.py``."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import orjson
import pandas as pd

from geo_busyness.schemas import (
    EXPLAIN_BASE,
    EXPLAIN_COLUMNS,
    EXPLAIN_OUTPUT,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    LEARNED_WEIGHT,
    PREDICTION,
    contribution_columns,
)
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


class Explained(NamedTuple):
    """Answers with their explanation columns, and what those explanations are."""

    answers: pd.DataFrame
    explanations: dict[str, Any]


def explain_answers(
    model: Any, queries: pd.DataFrame, answers: pd.DataFrame, top_k: int
) -> Explained:
    """``answers`` (to ``queries``, row for row) with the top ``top_k`` SHAP contributions of
    each (``geo_busyness.model.explain``, imported here: it loads shap on first use)."""
    from geo_busyness.model.explain import describe, explain_busyness  # noqa: PLC0415

    table = explain_busyness(model, queries, top_k).set_axis(answers.index)
    return Explained(pd.concat([answers, table], axis=1), describe(model))


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


def encode_predictions(
    answers: pd.DataFrame, media: str = JSON, explanations: dict[str, Any] | None = None
) -> bytes:
    """``{"predictions": [{"h3_cell", "hour", "predicted_busyness", "p10", "p50", "p90",
    "horizon_hours"}, ...]}`` or a CSV table with those columns.

    Floats are written with the shortest text that reads back to the same double, so a client
    gets exactly the numbers ``predict_busyness`` returned; the horizon is a whole number.
    With ``explanations`` (``Explained``), each JSON answer also holds ``"explanation"``
    (learned weight, base value, output and the top contributions) and the body
    ``"explanations"`` (method, scale, statement); a CSV table adds the explanation columns.
    """
    columns = answer_columns(answers)
    if media == CSV:
        table = pd.DataFrame(columns)
        if explanations is not None:
            extra = [
                *EXPLAIN_COLUMNS,
                *(n for r in _ranks(answers) for n in contribution_columns(r)),
            ]
            table[extra] = answers[extra].to_numpy()
        return table.to_csv(index=False, lineterminator="\n").encode()
    rows = zip(*columns.values(), strict=True)
    records = [dict(zip(ANSWER_COLUMNS, row, strict=True)) for row in rows]
    if explanations is None:
        return orjson.dumps({"predictions": records})
    for record, explanation in zip(records, _explanation_records(answers), strict=True):
        record["explanation"] = explanation
    return orjson.dumps({"predictions": records, "explanations": explanations})


def _explanation_records(answers: pd.DataFrame) -> list[dict[str, Any]]:
    """Each answer's ``{"learned_weight", "base_value", "output", "top": [{"feature",
    "value", "contribution"}, ...]}`` from its explanation columns (NaN is written null)."""
    head = {
        "learned_weight": _floats(answers[LEARNED_WEIGHT]),
        "base_value": _floats(answers[EXPLAIN_BASE]),
        "output": _floats(answers[EXPLAIN_OUTPUT]),
    }
    tops: list[list[dict[str, Any]]] = [[] for _ in range(len(answers))]
    for rank in _ranks(answers):
        feature, value, contribution = contribution_columns(rank)
        names = answers[feature].astype(object).where(answers[feature].notna(), None).tolist()
        triples = zip(names, _floats(answers[value]), _floats(answers[contribution]), strict=True)
        for top, (name, number, part) in zip(tops, triples, strict=True):
            if name is not None:
                top.append({"feature": name, "value": number, "contribution": part})
    return [
        {"learned_weight": weight, "base_value": base, "output": output, "top": top}
        for weight, base, output, top in zip(*head.values(), tops, strict=True)
    ]


def _ranks(answers: pd.DataFrame) -> range:
    """The contribution ranks (1-based) that ``answers`` has columns for."""
    ranks = 0
    while contribution_columns(ranks + 1)[0] in answers.columns:
        ranks += 1
    return range(1, ranks + 1)


def _floats(column: pd.Series) -> list[float | None]:
    """A float column as a list with None for NaN (JSON null)."""
    values = column.to_numpy(dtype=float)
    return np.where(np.isnan(values), None, values).tolist()


def encode_error(status: int, message: str) -> bytes:
    """The JSON body of an error answer."""
    return orjson.dumps({"error": message, "status": status})
