"""Batch inference nodes: forecast the selected version's known cells from the latest hour,
score query rows.

The model is the artifact the server loads (``geo_busyness.model.loading.load_model``, through
``registry.load_version``), a ``BusynessForecaster`` whose origin is the end of the counts it
was fitted on. Here it is first told the clean events counted since then
(``BusynessForecaster.with_counts``, no refit), so its origin moves to the forecast start: the
first hours are true nowcasts from the latest counts. The forecast goes through
``predict_cell_hours`` and the query rows through ``predict_busyness`` (the server's own
function) on that extended model. Query rows are judged by the server's own checks
(``geo_busyness.model.queries``), so a row quarantined here is one the endpoint would refuse,
with the same words. ``inference.explain_top_k`` > 0 adds to both tables the top SHAP feature
contributions of each row (``geo_busyness.model.explain``, as the endpoint's ``"explain"``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.errors import NoEventsError
from geo_busyness.model.cell_hours import count_cell_hours, parse_time_parameter, to_utc_hours
from geo_busyness.model.explain import describe, explain_busyness, explain_cell_hours
from geo_busyness.model.forecaster import HORIZON_BUCKETS, BusynessForecaster
from geo_busyness.model.predict import (
    as_forecaster,
    cell_hour_grid,
    predict_busyness,
    predict_cell_hours,
)
from geo_busyness.model.queries import DEFAULT_MAX_DISTANCE_KM, known_cells, split_queries
from geo_busyness.schemas import (
    EVENT_TIME,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
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
#: What the report says when there was no query row to score.
NO_QUERIES = "no query rows (inference_queries absent or empty): none scored"
#: The products a forecast table serves, by hours ahead of its origin (``HORIZON_BUCKETS``).
PRODUCTS = dict(zip(("nowcast", "day_ahead", "week_ahead"), HORIZON_BUCKETS, strict=True))


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
        raise NoEventsError(
            "clean_events has no rows: set inference.start to forecast from a time."
        )
    return {
        "start": start,
        "horizon_hours": horizon,
        "start_from": start_from,
        "last_clean_event": last_event,
    }


def extend_with_recent_counts(
    model: Any, clean_events: pd.DataFrame, window: dict[str, Any]
) -> tuple[BusynessForecaster, dict[str, Any]]:
    """The model told the clean events counted after its origin, up to the forecast start.

    Its origin moves to ``window["start"]`` (no refit), so the forecast's first hour is one
    hour ahead of the latest known count. Every hour between the model's origin and the start
    becomes known; an hour without a clean event counts as zero events, so a start past the
    hour after the last clean event (or a feed that stopped) reads as a quiet city: the
    report says how many such trailing hours there are. A start at or before the model's
    origin adds nothing (the hours before the origin keep the counts the model was fitted
    on, and are answered with their one-hour-ahead forecasts).
    """
    forecaster = as_forecaster(model)
    model_origin = forecaster.origin
    start = pd.Timestamp(window["start"])
    times = clean_events[EVENT_TIME]
    recent = clean_events.loc[(times >= model_origin) & (times < start)]
    if start > model_origin:
        counts = count_cell_hours(recent, forecaster.resolution)
        forecaster = forecaster.with_counts(counts, start)
    last = window["last_clean_event"]
    after_last = to_utc_hours(pd.Series([last])).iloc[0] + _HOUR if last is not None else None
    empty_tail = (
        max(0, int((start - max(after_last, model_origin)) // _HOUR))
        if after_last is not None and start > model_origin
        else 0
    )
    extension = {
        "model_origin_utc": model_origin.isoformat(),
        "origin_utc": forecaster.origin.isoformat(),
        "hours_added": max(0, int((forecaster.origin - model_origin) // _HOUR)),
        "events_added": len(recent) if start > model_origin else 0,
        "hours_after_last_clean_event": empty_tail,
    }
    if start < model_origin:
        logger.warning(
            "The forecast starts at %s, before the model's origin %s: those hours are known to"
            " it and get their one-hour-ahead forecasts",
            start,
            model_origin,
        )
    if empty_tail:
        logger.warning(
            "The forecast starts %d hour(s) after the last clean event: those hours are taken as"
            " zero events",
            empty_tail,
        )
    logger.info(
        "Forecasting from %s: %s events in %d hour(s) after the model's origin %s",
        forecaster.origin,
        f"{extension['events_added']:,}",
        extension["hours_added"],
        model_origin,
    )
    return forecaster, extension


def explain_top_k(value: Any) -> int:
    """``inference.explain_top_k`` checked: contributions per row, 0 = no explanations."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"inference.explain_top_k must be a whole number >= 0 (0: no explanations), got"
            f" {value!r}."
        )
    return value


def forecast_known_cells(
    model: Any, model_version: dict[str, Any], window: dict[str, Any], top_k: int = 0
) -> pd.DataFrame:
    """Mean, P10/P50/P90 and horizon of every cell the model knows in each forecast hour, and
    the top ``top_k`` SHAP contributions of each (none when 0)."""
    cells = as_forecaster(model).history_.cells
    hours = pd.date_range(window["start"], periods=window["horizon_hours"], freq="h")
    grid = cell_hour_grid(cells, hours)
    forecast = predict_cell_hours(model, *grid)
    if explain_top_k(top_k):
        forecast = pd.concat([forecast, explain_cell_hours(model, *grid, top_k)], axis=1)
    forecast[MODEL_NAME] = model_version["model_name"]
    forecast[MODEL_VERSION] = model_version["version"]
    logger.info("Forecast %d cells x %d hours from %s", len(cells), len(hours), hours[0])
    return forecast


# ---------------------------------------------------------------- query rows
def split_inference_queries(
    queries: pd.DataFrame | None,
    params: dict[str, Any],
    column_mapping: dict[str, str | None] | None = None,
    model: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Rows the server would accept (typed, with ``source_row``), the others quarantined.

    The server's own checks (``split_queries``) name each refused row's first broken rule and
    column, with the message the server answers for that row sent alone; the quarantine keeps
    the row's raw values beside them. With the ``model``, its service area is checked as the
    server checks it (``swapped_coordinates``, ``outside_service_area``: farther than
    ``inference.max_distance_km``, default ``DEFAULT_MAX_DISTANCE_KM``, from every cell it
    knows). ``queries`` is None when nothing is stored at the
    dataset's path (``datasets.OptionalCSVDataset``): no rows, one log line. Query
    rows take the server's column names: ``column_mapping`` (data_processing's) only names the
    source columns in the error when a file uses those instead.
    """
    absent = queries is None
    if absent:
        queries = pd.DataFrame(columns=list(QUERY_COLUMNS))
    missing = [col for col in QUERY_COLUMNS if col not in queries.columns]
    if missing:
        raise ValueError(missing_query_columns_message(missing, queries.columns, column_mapping))
    if queries.empty:
        logger.info(
            "No query rows (inference_queries is %s): no queries scored; the next-hours"
            " forecast is written as usual",
            "absent" if absent else "empty",
        )
        valid, problems = _no_queries(), pd.DataFrame(columns=[SOURCE_ROW, *_PROBLEM_COLUMNS])
    else:
        valid, problems = split_queries(queries, *_service_area(model, params))
    rejected = queries.iloc[problems[SOURCE_ROW].to_numpy(dtype=np.int64)].reset_index(drop=True)
    mixed = rejected.select_dtypes(include=["object", "str"]).columns
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


def _service_area(model: Any, params: dict[str, Any]) -> tuple[Any, float | None]:
    """The model's known cells and the largest distance to them (the server's default unless
    ``inference.max_distance_km`` is set); (None, None) without a model: no area check."""
    if model is None:
        return None, None
    distance = params.get("max_distance_km")
    return known_cells(model), DEFAULT_MAX_DISTANCE_KM if distance is None else float(distance)


def missing_query_columns_message(
    missing: list[str], columns: Any, column_mapping: dict[str, str | None] | None
) -> str:
    """Which query columns are missing; when the file has the source's mapped names instead,
    that the column mapping is not applied to query rows, and why."""
    message = (
        f"inference_queries lacks column(s) {missing}; every query needs {list(QUERY_COLUMNS)}"
    )
    sources = {
        canonical: source
        for canonical, source in (column_mapping or {}).items()
        if canonical in missing and source in set(columns)
    }
    if sources:
        named = ", ".join(f"{source!r} -> {canonical!r}" for canonical, source in sources.items())
        message += (
            f". It has the source's column names ({named}): query rows take the server's names"
            " and times (ISO 8601 with an offset, naive = UTC, or Unix seconds), as a request"
            " to the endpoint does; data_processing.column_mapping is not applied to them"
        )
    return message + "."


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
    model: Any, model_version: dict[str, Any], queries: pd.DataFrame, top_k: int = 0
) -> pd.DataFrame:
    """Each valid query row with its cell, hour, mean, P10/P50/P90 and horizon: what the
    server answers, from the model extended with the latest counts; with ``top_k`` > 0, the
    top SHAP contributions of each too (what the server answers to ``"explain": top_k``)."""
    answers = predict_busyness(model, queries[list(QUERY_COLUMNS)])
    parts = [queries[[SOURCE_ROW, *QUERY_COLUMNS]], answers]
    if explain_top_k(top_k):
        parts.append(explain_busyness(model, queries[list(QUERY_COLUMNS)], top_k))
    scored = pd.concat(parts, axis=1)
    scored[MODEL_VERSION] = model_version["version"]
    return scored.reset_index(drop=True)


# ---------------------------------------------------------------- the report
def describe_explanations(model: Any, top_k: int) -> dict[str, Any]:
    """What the explanation columns hold (method, scale, learned weight per horizon bucket, a
    statement; for a baseline, why there are none), or that they were not asked for."""
    if not explain_top_k(top_k):
        return {"top_k": 0, "statement": "Not asked for (inference.explain_top_k: 0)."}
    return {"top_k": top_k, **describe(model)}


def report_inference(
    model_version: dict[str, Any],
    window: dict[str, Any],
    forecast: pd.DataFrame,
    scored: pd.DataFrame,
    validation: dict[str, Any],
    *,
    parameter_mismatch: list[dict[str, Any]] | None = None,
    extension: dict[str, Any] | None = None,
    explanations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Which model (and how it was chosen, and where its own parameters differ from the run's),
    the forecast window, its origin and the products it serves, and the counts of every output.
    """
    end = window["start"] + window["horizon_hours"] * _HOUR
    tags = model_version["tags"]
    origin = (extension or {}).get("origin_utc")
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
            **{
                f"{column}_total": float(forecast[column].sum())
                for column in INTERVAL_COLUMNS
                if column in forecast
            },
            "origin": dict(extension or {}),
            "products": _products(forecast, origin),
        },
        "queries": {
            "rows": validation["rows"],
            "scored": len(scored),
            "rejected": validation["rows_rejected"],
            "rejected_by_reason_and_column": validation["rejected_by_reason_and_column"],
        }
        | ({} if validation["rows"] else {"note": NO_QUERIES}),
        "model_parameter_mismatch": list(parameter_mismatch or []),
        "explanations": dict(explanations or {"top_k": 0}),
    }


def _products(forecast: pd.DataFrame, origin: str | None) -> dict[str, Any]:
    """Which products the table serves: hours (and rows) per horizon bucket from its origin.

    ``nowcast`` 1-3 h ahead, ``day_ahead`` 4-24 h, ``week_ahead`` 25-168 h; an hour before the
    origin is ``known`` (answered with its one-hour-ahead forecast).
    """
    if HORIZON not in forecast or forecast.empty:
        return {}
    hours = pd.DatetimeIndex(forecast[HOUR])
    known = (hours < pd.Timestamp(origin)) if origin else np.zeros(len(forecast), dtype=bool)
    horizon = forecast[HORIZON].to_numpy()
    products: dict[str, Any] = {}
    parts = {"known": known}
    for name, (low, high) in PRODUCTS.items():
        parts[name] = ~known & (horizon >= low) & (horizon <= high)
    for name, part in parts.items():
        if name == "known" and not part.any():
            continue
        entry = {"rows": int(part.sum()), "hours": int(hours[part].nunique())}
        if name in PRODUCTS:
            entry["horizon_hours"] = "{}-{}".format(*PRODUCTS[name])
        products[name] = entry
    products["served"] = [name for name, part in parts.items() if part.any()]
    return products


def _iso(moment: Any) -> str | None:
    return None if moment is None or pd.isna(moment) else pd.Timestamp(moment).isoformat()
