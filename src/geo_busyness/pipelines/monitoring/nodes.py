"""Monitoring: the model in use, its training window as the reference, recent events against it.

Every comparison takes the reference from the version's own tags (its train window, test window
and test metrics), so the report says how far the world has moved from what *this* model learnt.

The model is a ``BusynessForecaster``: its cells are its count history's, and it forecasts from
an origin. Recent performance is measured on forecasts made *before* each recent hour: the
model is told the recent counts (``with_counts``, no refit) and each recent hour gets its
day-ahead forecast from the local midnight before it (the window's first hour for a partial
first day), the product whose P50 MAE and mean R² the test-window tags record.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.metrics import regression_metrics
from geo_busyness.model.cell_hours import HOUR_NS, build_panel, count_cell_hours, utc_hour_ns
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.geo import cell_names, euclidean_deg, h3_cells, haversine_km
from geo_busyness.model.history import CountHistory
from geo_busyness.model.predict import as_forecaster
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    PREDICTION,
    TARGET,
    VENUE_LAT,
    VENUE_LON,
)

from .drift import categorical_drift, numeric_drift
from .recent_window import NEWEST_INGESTED, NEWEST_WEEK

logger = logging.getLogger(__name__)

#: The cell-share bucket of every cell the model never saw in its train window.
UNSEEN_BUCKET = "unseen"
#: Event-level features by kind; ``CELL`` is the H3 cell (at the model's resolution).
NUMERIC_FEATURES = (EVENT_LAT, EVENT_LON, "Hdist_to_restaurant", "dist_to_restaurant")
CATEGORICAL_FEATURES = ("hour_of_day", "day_of_week", CELL)
KNOWN_CELL = "known_cell"
#: (cell, origin, horizon) rows predicted per call (bounds the feature matrix's memory).
_CHUNK_ROWS = 200_000
_HOUR = pd.Timedelta(hours=1)


# ---------------------------------------------------------------- the model's reference
def select_reference_events(
    clean_events: pd.DataFrame, model_version: dict[str, Any]
) -> pd.DataFrame:
    """The clean events of the version's train window [window_train_start, window_train_end)."""
    start, end = _train_window(model_version)
    times = clean_events[EVENT_TIME]
    reference = clean_events.loc[(times >= start) & (times < end)].reset_index(drop=True)
    if reference.empty:
        raise ValueError(
            f"clean_events has no event in the model's train window {start} .. {end}: it is not"
            " the data the model was trained on (run data_processing on that data first)."
        )
    return reference


def _train_window(model_version: dict[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The version's train window, from the tags the modeling pipeline set."""
    return _window(model_version, "train")


def _window(model_version: dict[str, Any], name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The version's ``name`` window (train, validation, test) from its tags."""
    tags = model_version["tags"]
    keys = (f"window_{name}_start", f"window_{name}_end")
    missing = [key for key in keys if key not in tags]
    if missing:
        raise ValueError(
            f"Model {model_version['model_name']} version {model_version['version']} lacks the"
            f" tag(s) {missing}: monitoring takes its reference windows from them (set by the"
            " modeling pipeline)."
        )
    return pd.Timestamp(tags[keys[0]]), pd.Timestamp(tags[keys[1]])


# ---------------------------------------------------------------- event-level features
def describe_events(events: pd.DataFrame, model: Any) -> pd.DataFrame:
    """Per event: lat, lon, UTC hour of day and day of week, distances to the restaurant, and
    the H3 cell (hex name when the model knows it, else ``unseen``)."""
    forecaster = as_forecaster(model)
    times = events[EVENT_TIME].dt.tz_convert("UTC")
    lat, lon = events[EVENT_LAT].to_numpy(float), events[EVENT_LON].to_numpy(float)
    venue_lat = events[VENUE_LAT].to_numpy(float, na_value=np.nan)
    venue_lon = events[VENUE_LON].to_numpy(float, na_value=np.nan)
    cells = h3_cells(lat, lon, forecaster.resolution)
    known = np.isin(cells, forecaster.history_.cells)
    return pd.DataFrame(
        {
            EVENT_LAT: lat,
            EVENT_LON: lon,
            "hour_of_day": times.dt.hour.to_numpy(),
            "day_of_week": times.dt.day_of_week.to_numpy(),
            "Hdist_to_restaurant": haversine_km(lat, lon, venue_lat, venue_lon),
            "dist_to_restaurant": euclidean_deg(lat, lon, venue_lat, venue_lon),
            CELL: np.where(known, cell_names(cells), UNSEEN_BUCKET),
        }
    )


def compare_event_features(
    reference: pd.DataFrame, recent: pd.DataFrame, model: Any, params: dict[str, Any]
) -> dict[str, Any]:
    """Drift of each configured event feature, and the share of events in unseen cells."""
    bins, thresholds = params["bins"], params["thresholds"]
    known_names = sorted(cell_names(as_forecaster(model).history_.cells).tolist())
    categories = {
        "hour_of_day": np.arange(24),
        "day_of_week": np.arange(7),
        CELL: np.array([*known_names, UNSEEN_BUCKET], dtype=object),
    }
    drift: dict[str, Any] = {}
    for name in params["event_features"]:
        if name in NUMERIC_FEATURES:
            if recent[name].isna().all() or reference[name].isna().all():
                drift[name] = {"kind": "numeric", "skipped": "no values (column not mapped)"}
                continue
            result = numeric_drift(reference[name], recent[name], bins, name)
        elif name in CATEGORICAL_FEATURES:
            result = categorical_drift(reference[name], recent[name], categories[name])
        else:
            raise ValueError(
                f"Unknown monitoring.event_features entry {name!r}; expected one of"
                f" {[*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]}."
            )
        psi_threshold = (thresholds.get("psi_by_feature") or {}).get(name, thresholds["psi"])
        drift[name] = result | _judge(result, psi_threshold, thresholds["ks_d"])
    unseen = recent[CELL] == UNSEEN_BUCKET
    drift["unseen_cells"] = {
        "recent_event_share": float(unseen.mean()),
        "reference_event_share": float((reference[CELL] == UNSEEN_BUCKET).mean()),
        "recent_unseen_events": int(unseen.sum()),
        "threshold": thresholds["unseen_cell_event_share"],
        "drifted": bool(unseen.mean() > thresholds["unseen_cell_event_share"]),
    }
    return drift


def _judge(result: dict[str, Any], psi_threshold: float, ks_threshold: float | None) -> dict:
    """Thresholds and the verdict (PSI above its threshold, or KS D above its own)."""
    verdict = {"psi_threshold": psi_threshold, "drifted": result["psi"] > psi_threshold}
    if "ks_d" in result and ks_threshold is not None:
        verdict["ks_d_threshold"] = ks_threshold
        verdict["drifted"] = verdict["drifted"] or result["ks_d"] > ks_threshold
    return verdict


# ---------------------------------------------------------------- cell-hours: busyness, predictions
def extend_monitored_model(
    model: Any, clean_events: pd.DataFrame, recent_events: pd.DataFrame
) -> tuple[BusynessForecaster, dict[str, Any]]:
    """The model told every count up to the end of the recent window (no refit).

    Hours between the model's origin and the recent window come from ``clean_events`` (if the
    history has them), the recent window's hours from the recent batch's own rows: when the
    model already holds counts for the window's hours (it was trained through them, and the
    batch was landed or corrected after), it forgets from the window's start, so the window
    is judged by what the batch says (``model_hours_replaced``). A gap no table covers counts
    as zero events: the summary names it (``gap_hours_without_events``), since it lowers the
    forecasts after it.
    """
    if recent_events.empty:
        raise ValueError("recent_raw_events has no clean event left to monitor.")
    forecaster = as_forecaster(model)
    origin = forecaster.origin
    recent_hours = recent_events[EVENT_TIME].dt.tz_convert("UTC").dt.floor("h")
    recent_start, recent_end = recent_hours.min(), recent_hours.max() + _HOUR
    replaced = max(0, int((min(origin, recent_end) - recent_start) // _HOUR))
    if replaced:
        forecaster = known_before(forecaster, recent_start)
        logger.info(
            "The model already holds %d hour(s) of the recent window (its origin %s is after"
            " %s): those hours are counted from the recent batch's own rows",
            replaced,
            origin,
            recent_start,
        )
    times = clean_events[EVENT_TIME]
    gap = clean_events.loc[(times >= forecaster.origin) & (times < recent_start)]
    summary = {
        "model_origin_utc": origin.isoformat(),
        "recent_start_utc": recent_start.isoformat(),
        "recent_end_utc": recent_end.isoformat(),
        "model_hours_replaced": replaced,
        "gap_hours": max(0, int((recent_start - origin) // _HOUR)),
        "gap_events_from_history": len(gap),
        "gap_hours_without_events": 0,
    }
    if recent_end > forecaster.origin:
        events = pd.concat([gap[recent_events.columns], recent_events], ignore_index=True)
        forecaster = forecaster.with_counts(
            count_cell_hours(events, forecaster.resolution), recent_end
        )
        if summary["gap_hours"]:
            counted = utc_hour_ns(gap[EVENT_TIME]) if len(gap) else np.empty(0, np.int64)
            summary["gap_hours_without_events"] = summary["gap_hours"] - len(np.unique(counted))
    if summary["gap_hours"] and not len(gap):
        logger.warning(
            "The recent window starts %d hour(s) after the model's origin %s and clean_events"
            " has no event in between: those hours count as zero events",
            summary["gap_hours"],
            origin,
        )
    summary["origin_utc"] = forecaster.origin.isoformat()
    return forecaster, summary


def known_before(forecaster: BusynessForecaster, end: pd.Timestamp) -> BusynessForecaster:
    """A copy knowing only the counts before ``end`` (its origin there); the model itself is
    untouched. ``with_counts`` of nothing makes the copy rebuild what it derives from them."""
    history = forecaster.history_
    position = max(0, int(history.positions(np.array([end.value]))[0]))
    short = copy.copy(forecaster)
    short.history_ = CountHistory(
        history.cells, history.start_ns, history.counts[:, :position], history.timezone
    )
    nothing = pd.DataFrame(
        {
            CELL: np.empty(0, np.uint64),
            HOUR: pd.DatetimeIndex([], tz="UTC"),
            TARGET: np.empty(0, np.float32),
        }
    )
    return short.with_counts(nothing, short.origin)


def day_ahead_answers(model: Any, cells: np.ndarray, hours: pd.Series) -> dict[str, np.ndarray]:
    """Day-ahead forecasts of known (cell, hour) pairs: each hour from the local midnight before
    it, or from the first hour asked when that midnight is earlier (a partial first day).

    Mean, P10/P50/P90 and the horizon, as the modeling backtest's day-ahead product scores them
    (every forecast made from the counts before its origin only).
    """
    forecaster = as_forecaster(model)
    history = forecaster.history_
    position = history.positions(utc_hour_ns(pd.Series(hours)))
    if len(position) and (position.min() < 0 or position.max() >= history.hours):
        raise ValueError(
            "Day-ahead forecasts need hours the model knows: extend it with their counts first."
        )
    first = int(position.min()) if len(position) else 0
    span = np.arange(first, int(position.max()) + 1 if len(position) else first)
    is_origin = (forecaster.derived.calendar["hour"][span] == 0) | (span == first)
    latest = np.maximum.accumulate(np.where(is_origin, span, first))
    origin = latest[position - first]
    horizon = position - origin + 1
    rows = history.rows(np.asarray(cells, dtype=np.uint64))
    mean = np.concatenate(
        [
            np.clip(forecaster.predict_rows(rows[s], origin[s], horizon[s]), 0.0, None)
            for s in (slice(i, i + _CHUNK_ROWS) for i in range(0, len(rows), _CHUNK_ROWS))
        ]
        or [np.empty(0)]
    )
    answers = {PREDICTION: mean, HORIZON: horizon}
    answers |= dict(zip(INTERVAL_COLUMNS, forecaster.quantiles(mean, horizon), strict=True))
    return answers


def score_cell_hours(
    events: pd.DataFrame | None,
    model: Any,
    start: pd.Timestamp,
    end: pd.Timestamp,
    cells: np.ndarray,
    *,
    predict: bool = True,
) -> pd.DataFrame:
    """Dense panel ``cells`` x hours [start, end) of actual busyness (zero-filled), whether the
    cell is one the model knows and (``predict``) its day-ahead forecast of each cell-hour.

    ``events`` gives the actuals; None reads them from the model's own history.
    """
    forecaster = as_forecaster(model)
    if events is None:
        counts = _history_counts(forecaster, start, end)
    else:
        counts = count_cell_hours(events, forecaster.resolution)
    panel = build_panel(counts, cells, start, end)
    panel[H3_CELL] = cell_names(panel[CELL].to_numpy())
    panel[KNOWN_CELL] = np.isin(panel[CELL].to_numpy(), forecaster.history_.cells)
    if predict:
        answers = day_ahead_answers(forecaster, panel[CELL].to_numpy(), panel[HOUR])
        for column in (PREDICTION, *INTERVAL_COLUMNS, HORIZON):
            panel[column] = answers[column]
    return panel.drop(columns=CELL)


def _history_counts(
    forecaster: BusynessForecaster, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """``cell, hour, busyness`` rows of the model's own counts in [start, end) (non-zero only)."""
    history = forecaster.history_
    first = max(0, int(history.positions(np.array([start.value]))[0]))
    last = min(history.hours, int(history.positions(np.array([end.value]))[0]))
    block = history.counts[:, first:last]
    row, col = np.nonzero(block)
    hours = pd.DatetimeIndex(history.start_ns + (first + col) * HOUR_NS, tz="UTC")
    return pd.DataFrame({CELL: history.cells[row], HOUR: hours, TARGET: block[row, col]})


def score_reference_cell_hours(
    reference_events: pd.DataFrame, model: Any, model_version: dict[str, Any]
) -> pd.DataFrame:
    """The train window's busyness panel over the model's cells (the busyness reference)."""
    start, end = _train_window(model_version)
    cells = as_forecaster(model).history_.cells
    return score_cell_hours(reference_events, model, start, end, cells, predict=False)


def score_reference_forecasts(model: Any, model_version: dict[str, Any]) -> pd.DataFrame:
    """The model's day-ahead forecasts over its test window (the predictions' reference).

    The train window's first two weeks are every feature's warm-up (a learned row needs two
    weeks before its origin), so its forecasts are not the model's usual ones; the test
    window's are genuine forecasts, the ones its test metrics scored.
    """
    start, end = _window(model_version, "test")
    forecaster = as_forecaster(model)
    return score_cell_hours(None, forecaster, start, end, forecaster.history_.cells)


def score_recent_cell_hours(recent_events: pd.DataFrame, model: Any) -> pd.DataFrame:
    """The recent window's panel over the model's cells plus the new cells events fell in,
    with day-ahead forecasts (``model``: extended with the recent counts)."""
    if recent_events.empty:
        raise ValueError("recent_raw_events has no clean event left to monitor.")
    hours = recent_events[EVENT_TIME].dt.tz_convert("UTC").dt.floor("h")
    forecaster = as_forecaster(model)
    seen = h3_cells(recent_events[EVENT_LAT], recent_events[EVENT_LON], forecaster.resolution)
    cells = np.union1d(forecaster.history_.cells, seen)
    return score_cell_hours(recent_events, forecaster, hours.min(), hours.max() + _HOUR, cells)


def compare_cell_hours(
    reference: pd.DataFrame,
    reference_forecasts: pd.DataFrame,
    recent: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Drift of the busyness distribution (known cells, against the train window) and of the
    model's day-ahead predictions (against its test window's)."""
    bins, thresholds = params["bins"], params["thresholds"]
    known = recent[KNOWN_CELL]
    busyness = numeric_drift(reference[TARGET], recent.loc[known, TARGET], bins, TARGET)
    predictions = numeric_drift(
        reference_forecasts[PREDICTION], recent[PREDICTION], bins, PREDICTION
    )
    return {
        "busyness": busyness | _judge(busyness, thresholds["busyness_psi"], None),
        "predictions": predictions | _judge(predictions, thresholds["prediction_psi"], None),
        "reference_hours": int(reference[HOUR].nunique()),
        "reference_forecast_hours": int(reference_forecasts[HOUR].nunique()),
        "recent_hours": int(recent[HOUR].nunique()),
        "recent_unseen_cells": int(recent.loc[~known, H3_CELL].nunique()),
    }


def evaluate_recent_performance(
    recent: pd.DataFrame,
    model_version: dict[str, Any],
    params: dict[str, Any],
    forecast_origin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Day-ahead MAE (of the P50) and R² (of the mean) on the recent known-cell panel against
    the version's test-window metrics (the same product and metrics)."""
    thresholds = params["thresholds"]
    panel = recent.loc[recent[KNOWN_CELL]]
    y = panel[TARGET].to_numpy()
    metrics = regression_metrics(y, panel[PREDICTION].to_numpy())
    metrics["mae"] = float(np.mean(np.abs(y - panel["p50"].to_numpy()))) if len(panel) else 0.0
    metrics["coverage_80"] = (
        float(np.mean((y >= panel["p10"].to_numpy()) & (y <= panel["p90"].to_numpy())))
        if len(panel)
        else 0.0
    )
    tags = model_version["tags"]
    test_mae, test_r2 = float(tags["test_mae"]), float(tags["test_r2"])
    mae_increase = metrics["mae"] / test_mae - 1 if test_mae > 0 else float("inf")
    r2_drop = test_r2 - metrics["r2"]
    by_hour = panel.assign(
        hour_of_day=panel[HOUR].dt.hour, error=(panel[PREDICTION] - panel[TARGET]).abs()
    ).groupby("hour_of_day")
    return {
        "forecast": (
            "day-ahead: each recent hour forecast from the local midnight before it (from the"
            " window's first hour on a partial first day), the model told the counts before"
            " that origin only; MAE of the P50, R² of the mean, as the test-window tags"
        ),
        "origin": dict(forecast_origin or {}),
        "rows": len(panel),
        "recent": metrics,
        "recent_mean_actual": float(panel[TARGET].mean()),
        "recent_mean_predicted": float(panel[PREDICTION].mean()),
        "test_window": {"mae": test_mae, "r2": test_r2},
        "mae_increase": mae_increase,
        "mae_increase_threshold": thresholds["mae_increase"],
        "r2_drop": r2_drop,
        "r2_drop_threshold": thresholds["r2_drop"],
        "degraded": bool(
            mae_increase > thresholds["mae_increase"] or r2_drop > thresholds["r2_drop"]
        ),
        "by_hour_of_day": {
            "hour": [int(hour) for hour in by_hour.groups],
            "mae": by_hour["error"].mean().round(4).tolist(),
            "mean_actual": by_hour[TARGET].mean().round(4).tolist(),
            "mean_predicted": by_hour[PREDICTION].mean().round(4).tolist(),
        },
    }


# ---------------------------------------------------------------- data quality
def compare_data_quality(
    reference_report: dict[str, Any],
    recent_report: dict[str, Any],
    params: dict[str, Any],
    recent_window: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Reject share by reason, recent vs reference, in percentage points.

    Skipped (no reason compared, a ``note`` saying why) when the recent window is the newest
    week of ``clean_events`` (``recent_window.source``): rows cleaned already pass again, and
    their rejected rows are in the reference's own report. For an ingested batch, its own
    figures from the ingestion record (``recent_window.data_quality``) are the recent side.
    """
    limit = params["thresholds"]["reject_share_increase_pp"]
    if (recent_window or {}).get("source") == NEWEST_INGESTED:
        recent_report = recent_window["data_quality"]
    if (recent_window or {}).get("source") == NEWEST_WEEK:
        return {
            "reference_rows": reference_report["rows_in"],
            "recent_rows": recent_report["rows_in"],
            "reference_rejected_fraction": reference_report["rejected_fraction"],
            "recent_rejected_fraction": recent_report["rejected_fraction"],
            "by_reason": {},
            "note": (
                "not compared: the recent window is the newest week of clean_events (no"
                " separate recent batch), rows that were cleaned already; their rejected rows"
                " are counted in the reference"
            ),
        }
    reasons = sorted(
        set(reference_report["rejected_by_reason"]) | set(recent_report["rejected_by_reason"])
    )
    by_reason = {}
    for reason in reasons:
        ref = reference_report["rejected_by_reason"].get(reason, 0) / reference_report["rows_in"]
        cur = recent_report["rejected_by_reason"].get(reason, 0) / recent_report["rows_in"]
        increase = 100 * (cur - ref)
        by_reason[reason] = {
            "reference_share": ref,
            "recent_share": cur,
            "increase_pp": increase,
            "threshold_pp": limit,
            "drifted": bool(increase > limit),
        }
    return {
        "reference_rows": reference_report["rows_in"],
        "recent_rows": recent_report["rows_in"],
        "reference_rejected_fraction": reference_report["rejected_fraction"],
        "recent_rejected_fraction": recent_report["rejected_fraction"],
        "by_reason": by_reason,
    }
