"""Monitoring: the model in use, its training window as the reference, recent events against it.

Every comparison takes the reference from the version's own tags (its train window and test
metrics), so the report says how far the world has moved from what *this* model learnt.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.metrics import regression_metrics
from geo_busyness.model.cell_hours import build_panel, count_cell_hours
from geo_busyness.model.geo import cell_names, euclidean_deg, h3_cells, haversine_km
from geo_busyness.model.predict import predict_cell_hours
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HOUR,
    PREDICTION,
    TARGET,
    VENUE_LAT,
    VENUE_LON,
)

from .drift import categorical_drift, numeric_drift

logger = logging.getLogger(__name__)

#: The cell-share bucket of every cell the model never saw in its train window.
UNSEEN_BUCKET = "unseen"
#: Event-level features by kind; ``CELL`` is the H3 cell (at the model's resolution).
NUMERIC_FEATURES = (EVENT_LAT, EVENT_LON, "Hdist_to_restaurant", "dist_to_restaurant")
CATEGORICAL_FEATURES = ("hour_of_day", "day_of_week", CELL)
KNOWN_CELL = "known_cell"


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
    tags = model_version["tags"]
    missing = [key for key in ("window_train_start", "window_train_end") if key not in tags]
    if missing:
        raise ValueError(
            f"Model {model_version['model_name']} version {model_version['version']} lacks the"
            f" tag(s) {missing}: monitoring takes its reference window from them (set by the"
            " modeling pipeline)."
        )
    return pd.Timestamp(tags["window_train_start"]), pd.Timestamp(tags["window_train_end"])


def _model_features(model: Any) -> Any:
    return model.named_steps["features"]


# ---------------------------------------------------------------- event-level features
def describe_events(events: pd.DataFrame, model: Any) -> pd.DataFrame:
    """Per event: lat, lon, UTC hour of day and day of week, distances to the restaurant, and
    the H3 cell (hex name when the model knows it, else ``unseen``)."""
    features = _model_features(model)
    times = events[EVENT_TIME].dt.tz_convert("UTC")
    lat, lon = events[EVENT_LAT].to_numpy(float), events[EVENT_LON].to_numpy(float)
    venue_lat = events[VENUE_LAT].to_numpy(float, na_value=np.nan)
    venue_lon = events[VENUE_LON].to_numpy(float, na_value=np.nan)
    cells = h3_cells(lat, lon, features.resolution)
    known = np.isin(cells, features.cells_)
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
    known_names = sorted(cell_names(_model_features(model).cells_).tolist())
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
def score_cell_hours(
    events: pd.DataFrame,
    model: Any,
    start: pd.Timestamp,
    end: pd.Timestamp,
    cells: np.ndarray,
) -> pd.DataFrame:
    """Dense panel ``cells`` x hours [start, end) of actual busyness (zero-filled), the model's
    prediction and whether the cell is one the model knows."""
    features = _model_features(model)
    counts = count_cell_hours(events, features.resolution)
    panel = build_panel(counts, cells, start, end)
    answers = predict_cell_hours(model, panel[CELL].to_numpy(), panel[HOUR])
    panel[PREDICTION] = answers[PREDICTION].to_numpy()
    panel[H3_CELL] = answers[H3_CELL].to_numpy()
    panel[KNOWN_CELL] = np.isin(panel[CELL].to_numpy(), features.cells_)
    return panel.drop(columns=CELL)


def score_reference_cell_hours(
    reference_events: pd.DataFrame, model: Any, model_version: dict[str, Any]
) -> pd.DataFrame:
    """The train window's panel over the model's cells, with in-sample predictions."""
    start, end = _train_window(model_version)
    return score_cell_hours(reference_events, model, start, end, _model_features(model).cells_)


def score_recent_cell_hours(recent_events: pd.DataFrame, model: Any) -> pd.DataFrame:
    """The recent window's panel over the model's cells plus the new cells events fell in."""
    if recent_events.empty:
        raise ValueError("recent_raw_events has no clean event left to monitor.")
    hours = recent_events[EVENT_TIME].dt.tz_convert("UTC").dt.floor("h")
    features = _model_features(model)
    seen = h3_cells(recent_events[EVENT_LAT], recent_events[EVENT_LON], features.resolution)
    cells = np.union1d(features.cells_, seen)
    return score_cell_hours(
        recent_events, model, hours.min(), hours.max() + pd.Timedelta(hours=1), cells
    )


def compare_cell_hours(
    reference: pd.DataFrame, recent: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Any]:
    """Drift of the busyness distribution (known cells) and of the model's predictions."""
    bins, thresholds = params["bins"], params["thresholds"]
    known = recent[KNOWN_CELL]
    busyness = numeric_drift(reference[TARGET], recent.loc[known, TARGET], bins, TARGET)
    predictions = numeric_drift(reference[PREDICTION], recent[PREDICTION], bins, PREDICTION)
    return {
        "busyness": busyness | _judge(busyness, thresholds["busyness_psi"], None),
        "predictions": predictions | _judge(predictions, thresholds["prediction_psi"], None),
        "reference_hours": int(reference[HOUR].nunique()),
        "recent_hours": int(recent[HOUR].nunique()),
        "recent_unseen_cells": int(recent.loc[~known, H3_CELL].nunique()),
    }


def evaluate_recent_performance(
    recent: pd.DataFrame, model_version: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """MAE and R² on the recent known-cell panel against the version's test-window metrics."""
    thresholds = params["thresholds"]
    panel = recent.loc[recent[KNOWN_CELL]]
    metrics = regression_metrics(panel[TARGET].to_numpy(), panel[PREDICTION].to_numpy())
    tags = model_version["tags"]
    test_mae, test_r2 = float(tags["test_mae"]), float(tags["test_r2"])
    mae_increase = metrics["mae"] / test_mae - 1 if test_mae > 0 else float("inf")
    r2_drop = test_r2 - metrics["r2"]
    by_hour = panel.assign(
        hour_of_day=panel[HOUR].dt.hour, error=(panel[PREDICTION] - panel[TARGET]).abs()
    ).groupby("hour_of_day")
    return {
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
    reference_report: dict[str, Any], recent_report: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Reject share by reason, recent vs reference, in percentage points."""
    limit = params["thresholds"]["reject_share_increase_pp"]
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
