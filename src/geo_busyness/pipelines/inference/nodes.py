"""Batch inference nodes: forecast the selected version's known cells, score query rows.

The model is the artifact the server loads (``geo_busyness.model.loading.load_model``, through
``registry.load_version``); the forecast goes through ``predict_cell_hours`` and the query rows
through ``predict_busyness``, the server's own function. Query rows are judged by the server's
own checks (``geo_busyness.model.queries``), so a row quarantined here is one the endpoint
would refuse, with the same words.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import parse_time_parameter, to_utc_hours
from geo_busyness.model.predict import cell_hour_grid, predict_busyness, predict_cell_hours
from geo_busyness.model.queries import split_queries
from geo_busyness.schemas import (
    EVENT_TIME,
    H3_CELL,
    HOUR,
    PREDICTION,
    QUERY_COLUMNS,
    REJECT_COLUMN,
    REJECT_MESSAGE,
    REJECT_REASON,
    SOURCE_ROW,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
_PROBLEM_COLUMNS = (REJECT_REASON, REJECT_COLUMN, REJECT_MESSAGE)
_HOUR = pd.Timedelta(hours=1)


# ---------------------------------------------------------------- the forecast
def plan_forecast_window(
    clean_events: pd.DataFrame, params: dict[str, Any], source_timezone: str = "UTC"
) -> dict[str, Any]:
    """First forecast hour (``start``, else the hour after the last clean event) and the horizon.

    A naive ``start`` is read in ``source_timezone`` (as the source's own timestamps are), an
    aware one converted to UTC; either is floored to its UTC hour.
    """
    horizon = params["horizon_hours"]
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(f"inference.horizon_hours must be a whole number >= 1, got {horizon!r}.")
    last_event = clean_events[EVENT_TIME].max() if len(clean_events) else None
    if params.get("start"):
        start = parse_time_parameter(params["start"], source_timezone, "inference.start").floor("h")
        start_from = "parameter inference.start"
    elif last_event is not None:
        start = to_utc_hours(pd.Series([last_event])).iloc[0] + _HOUR
        start_from = "the hour after the last clean event"
    else:
        raise ValueError("clean_events has no rows: set inference.start to forecast from a time.")
    return {
        "start": start,
        "horizon_hours": horizon,
        "start_from": start_from,
        "last_clean_event": last_event,
    }


def forecast_known_cells(
    model: Any, model_version: dict[str, Any], window: dict[str, Any]
) -> pd.DataFrame:
    """Predicted busyness of every cell of the model's train window in each forecast hour."""
    cells = model.named_steps["features"].cells_
    hours = pd.date_range(window["start"], periods=window["horizon_hours"], freq="h")
    forecast = predict_cell_hours(model, *cell_hour_grid(cells, hours))
    forecast[MODEL_NAME] = model_version["model_name"]
    forecast[MODEL_VERSION] = model_version["version"]
    logger.info("Forecast %d cells x %d hours from %s", len(cells), len(hours), hours[0])
    return forecast


# ---------------------------------------------------------------- query rows
def split_inference_queries(
    queries: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Rows the server would accept (typed, with ``source_row``), the others quarantined.

    The server's own checks (``split_queries``) name each refused row's first broken rule and
    column, with the message the server answers for that row sent alone; the quarantine keeps
    the row's raw values beside them.
    """
    missing = [col for col in QUERY_COLUMNS if col not in queries.columns]
    if missing:
        raise ValueError(
            f"inference_queries lacks column(s) {missing}; every query needs {list(QUERY_COLUMNS)}."
        )
    if queries.empty:
        valid, problems = _no_queries(), pd.DataFrame(columns=[SOURCE_ROW, *_PROBLEM_COLUMNS])
    else:
        valid, problems = split_queries(queries)
    rejected = queries.iloc[problems[SOURCE_ROW].to_numpy(dtype=np.int64)].reset_index(drop=True)
    mixed = rejected.select_dtypes(include="object").columns
    rejected[mixed] = rejected[mixed].astype("string")  # raw values of any type, as text
    rejected.insert(0, SOURCE_ROW, problems[SOURCE_ROW].to_numpy(dtype=np.int64))
    rejected[list(_PROBLEM_COLUMNS)] = problems[list(_PROBLEM_COLUMNS)].to_numpy()
    by_reason = rejected.groupby([REJECT_REASON, REJECT_COLUMN]).size().sort_values(ascending=False)
    validation = {
        "rows": len(queries),
        "rows_valid": len(valid),
        "rows_rejected": len(rejected),
        "max_rejected_fraction": params["max_rejected_fraction"],
        "rejected_by_reason_and_column": [
            {"reason": reason, "column": column, "rows": int(rows)}
            for (reason, column), rows in by_reason.items()
        ],
    }
    return valid, rejected, validation


def _no_queries() -> pd.DataFrame:
    """An empty table typed like ``split_queries``' valid rows."""
    return pd.DataFrame(
        {
            SOURCE_ROW: pd.Series([], dtype=np.int64),
            EVENT_TIME: pd.Series([], dtype=pd.DatetimeTZDtype(unit="ns", tz="UTC")),
            **{col: pd.Series([], dtype=float) for col in QUERY_COLUMNS[1:]},
        }
    )


class QueryRejectionError(ValueError):
    """Too many query rows were invalid to score the batch."""


def accept_inference_queries(valid: pd.DataFrame, validation: dict[str, Any]) -> pd.DataFrame:
    """Pass the valid rows on, or fail when too large a share was rejected (quarantine saved)."""
    rows, rejected = validation["rows"], validation["rows_rejected"]
    limit = validation["max_rejected_fraction"]
    if rows and rejected / rows > limit:
        raise QueryRejectionError(
            f"{rejected:,} of {rows:,} query rows are invalid, above"
            f" inference.max_rejected_fraction={limit:.1%}; nothing was scored. The rejected rows"
            " found, with the server's message for each, are in 'rejected_inference_queries'."
        )
    return valid


def score_inference_queries(
    model: Any, model_version: dict[str, Any], queries: pd.DataFrame
) -> pd.DataFrame:
    """Each valid query row with its cell, hour and predicted busyness, as the server answers."""
    answers = predict_busyness(model, queries[list(QUERY_COLUMNS)])
    scored = pd.concat([queries[[SOURCE_ROW, *QUERY_COLUMNS]], answers], axis=1)
    scored[MODEL_VERSION] = model_version["version"]
    return scored.reset_index(drop=True)


# ---------------------------------------------------------------- the report
def report_inference(
    model_version: dict[str, Any],
    window: dict[str, Any],
    forecast: pd.DataFrame,
    scored: pd.DataFrame,
    validation: dict[str, Any],
    *,
    parameter_mismatch: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Which model (and how it was chosen, and where its own parameters differ from the run's),
    the forecast window and the counts of every output."""
    end = window["start"] + window["horizon_hours"] * _HOUR
    tags = model_version["tags"]
    return {
        "model": {
            key: model_version[key]
            for key in ("model_name", "version", "chosen_by", "model_uri", "run_id")
        }
        | {"data_windows": {key: tags[key] for key in sorted(tags) if key.startswith("window_")}},
        "forecast": {
            "start_utc": window["start"].isoformat(),
            "end_utc_exclusive": end.isoformat(),
            "start_from": window["start_from"],
            "last_clean_event_utc": _iso(window["last_clean_event"]),
            "horizon_hours": window["horizon_hours"],
            "cells": int(forecast[H3_CELL].nunique()),
            "hours": int(forecast[HOUR].nunique()),
            "rows": len(forecast),
            "predicted_busyness_total": float(forecast[PREDICTION].sum()),
        },
        "queries": {
            "rows": validation["rows"],
            "scored": len(scored),
            "rejected": validation["rows_rejected"],
            "rejected_by_reason_and_column": validation["rejected_by_reason_and_column"],
        },
        "model_parameter_mismatch": list(parameter_mismatch or []),
    }


def _iso(moment: Any) -> str | None:
    return None if moment is None or pd.isna(moment) else pd.Timestamp(moment).isoformat()
