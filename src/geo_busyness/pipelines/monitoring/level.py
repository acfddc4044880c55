"""Level and bias: does the recent window hold as many events as the model expected?

Most cell-hours of a busyness panel are zero, so the decile-binned PSI of busyness hardly
moves when every busy hour gets busier. The level check compares totals instead:

- **expected**: the model's seasonal profile of each of its cells x recent hours, as it stood
  at the start of the recent window (the mean count at that hour of the week over every
  earlier week, ``BusynessForecaster.baseline_means``), nothing of the recent window in it;
- **actual**: the events the model was told for the same cells x hours (``extend_monitored_model``);
- **relative change** ``actual / expected - 1`` (the effect size) and a two-sided z-test of
  ``log(actual / expected)``. Its variance holds the count noise (negative binomial with the
  model's dispersion) and the day-level noise (weather-like days that move the whole city)
  of both sides: the window's days, and the history's days the profile averages. The day-level
  spread comes from the model's own history: the city's daily totals around their weekday
  means (standard deviation, lag-1 autocorrelation: an AR(1) day process).

The served artifact's forecast of the window (from its start, a week ahead) and the
day-ahead bias are reported beside it; the monitoring README says why the profile decides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from geo_busyness.model.cell_hours import HOURS_PER_WEEK
from geo_busyness.model.forecaster import BusynessForecaster, bucket_index
from geo_busyness.model.predict import as_forecaster
from geo_busyness.schemas import PREDICTION, TARGET

from .nodes import KNOWN_CELL

#: Added to daily totals in log ratios (an empty day stays finite).
_SMOOTH = 0.5
#: Day-to-day persistence is clipped to [0, this]: a trend must not make the variance explode.
_MAX_PERSISTENCE = 0.95
#: Days with at least this many hours count as whole days (DST days have 23).
_FULL_DAY_HOURS = 23
#: Fewest residual degrees of freedom (days less weekdays) that give a day-level spread.
_MIN_DAYS = 3
#: (cell, hour) rows predicted per call (bounds the feature matrix's memory).
_CHUNK_ROWS = 200_000


# ---------------------------------------------------------------- the statistic
def window_variance_factor(persistence: float, days: float) -> float:
    """Variance of the mean of ``days`` AR(1) days, in units of one day's variance.

    ``(1 + 2 * sum_{k<m} (1 - k/m) * phi**k) / m`` with ``m`` = ``days`` rounded (at least 1):
    persistent days average out less than independent ones.
    """
    m = max(1, round(days))
    k = np.arange(1, m)
    return float((1 + 2 * np.sum((1 - k / m) * persistence**k)) / m)


def day_level_spread(totals: np.ndarray, weekdays: np.ndarray) -> dict[str, Any]:
    """Day-level spread of a city's daily event totals (whole days, in time order).

    The residual of each day's log total around its weekday's mean: ``sd`` (the residual
    degrees of freedom corrected for the weekday means) and ``persistence`` (lag-1
    autocorrelation, clipped to [0, 0.95]). With fewer than ``_MIN_DAYS`` residual degrees of
    freedom both are None.
    """
    log_total = pd.Series(np.log(np.asarray(totals, float) + _SMOOTH))
    groups = pd.Series(np.asarray(weekdays))
    residual = (log_total - log_total.groupby(groups).transform("mean")).to_numpy()
    dof = len(residual) - groups.nunique()
    if dof < _MIN_DAYS:
        return {"days": len(residual), "sd": None, "persistence": None}
    squares = float(np.sum(residual**2))
    lag1 = float(np.sum(residual[1:] * residual[:-1]) / squares) if squares > 0 else 0.0
    return {
        "days": len(residual),
        "sd": float(np.sqrt(squares / dof)),
        "persistence": float(np.clip(lag1, 0.0, _MAX_PERSISTENCE)),
    }


def level_test(
    actual: float,
    expected: float,
    count_variance: float,
    *,
    spread: dict[str, Any],
    days: float,
    history_days: float,
) -> dict[str, Any]:
    """Relative change, log ratio, its standard error, z and the two-sided p-value.

    ``count_variance`` is the variance of the actual total under the model (sum over
    cell-hours of mean + mean**2 / size). ``spread`` is the day-level spread
    (``day_level_spread``): it moves the window's ``days`` days, and the expectation too,
    which averages the ``history_days`` days before the window (their shocks do not cancel).
    """
    log_ratio = float(np.log((actual + _SMOOTH) / (expected + _SMOOTH)))
    counts = count_variance / max(expected, _SMOOTH) ** 2
    day = 0.0
    if spread["sd"] is not None:
        persistence = spread["persistence"]
        day = spread["sd"] ** 2 * (
            window_variance_factor(persistence, days)
            + window_variance_factor(persistence, max(history_days, 1.0))
        )
    se = float(np.sqrt(counts + day))
    z = log_ratio / se if se > 0 else 0.0
    return {
        "relative_change": _change(actual, expected),
        "log_ratio": log_ratio,
        "standard_error": se,
        "variance_counts": float(counts),
        "variance_day_level": float(day),
        "z": float(z),
        "p_value": float(2 * stats.norm.sf(abs(z))),
    }


def judge_level(test: dict[str, Any], change_limit: float, p_limit: float) -> bool:
    """Fired: the level moved by more than ``change_limit`` and p < ``p_limit``."""
    return bool(abs(test["relative_change"]) > change_limit and test["p_value"] < p_limit)


def _change(actual: float, expected: float) -> float:
    """actual / expected - 1 (inf when nothing was expected but something came)."""
    if expected > 0:
        return float(actual / expected - 1)
    return 0.0 if actual == 0 else float("inf")


def prediction_bias(predicted: np.ndarray, actual: np.ndarray) -> float:
    """mean(predicted) / mean(actual) - 1 (0 when both are empty or zero)."""
    return _change(float(np.sum(predicted)), float(np.sum(actual)))


# ---------------------------------------------------------------- what the model expected
def window_rows(
    forecaster: BusynessForecaster, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, origin, horizon, target) of every model cell x known hour in [start, end).

    The origin is ``start``; a target more than a week after it gets the horizon of the same
    hour of the week (as a served forecast does), its actual read at the real hour.
    """
    history = forecaster.history_
    first, last = (int(p) for p in history.positions(np.array([start.value, end.value])))
    span = np.arange(max(first, 0), min(last, history.hours))
    cells = len(history.cells)
    rows = np.repeat(np.arange(cells), len(span))
    target = np.tile(span, cells)
    horizon = (target - first) % HOURS_PER_WEEK + 1
    return rows, np.full(len(rows), first), horizon, target


def served_means(
    forecaster: BusynessForecaster, rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray
) -> np.ndarray:
    """The forecaster's mean forecast of (row, origin, horizon) rows, in chunks."""
    parts = [
        np.clip(forecaster.predict_rows(rows[s], origin[s], horizon[s]), 0.0, None)
        for s in (slice(i, i + _CHUNK_ROWS) for i in range(0, len(rows), _CHUNK_ROWS))
    ]
    return np.concatenate(parts) if parts else np.empty(0)


def history_daily_totals(forecaster: BusynessForecaster, end: int) -> pd.DataFrame:
    """The city's event total and local weekday of each whole local day before position
    ``end`` (the model's cells)."""
    derived = forecaster.derived
    positions = np.arange(min(max(end, 0), forecaster.history_.hours))
    frame = pd.DataFrame(
        {
            "day": derived.calendar["date"][positions],
            "weekday": derived.calendar["day_of_week"][positions],
            "total": forecaster.history_.counts[:, positions].sum(axis=0, dtype=float),
            "hours": 1,
        }
    )
    days = frame.groupby("day", sort=True).agg(
        total=("total", "sum"), weekday=("weekday", "first"), hours=("hours", "sum")
    )
    return days.loc[days["hours"] >= _FULL_DAY_HOURS, ["total", "weekday"]]


def _by_day(day: np.ndarray, **columns: np.ndarray) -> dict[str, list]:
    """Totals of ``columns`` per local day (ISO dates), rounded for the report."""
    frame = pd.DataFrame({"day": day, **columns}).groupby("day", sort=True).sum()
    dates = pd.to_datetime(frame.index.to_numpy(), unit="D").strftime("%Y-%m-%d")
    return {"day": list(dates), **{name: frame[name].round(3).tolist() for name in columns}}


# ---------------------------------------------------------------- the node
def compare_level(
    model: Any,
    forecast_origin: dict[str, Any],
    recent_cell_hours: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The recent window's event total against the model's seasonal profile (level check),
    the served forecast's total beside it, and the day-ahead bias (bias check).

    ``model`` is the monitored forecaster extended with the recent counts
    (``extend_monitored_model``), ``forecast_origin`` its summary (the recent window's bounds).
    """
    thresholds = params["thresholds"]
    start = pd.Timestamp(forecast_origin["recent_start_utc"])
    end = pd.Timestamp(forecast_origin["recent_end_utc"])
    return {
        "level": level_figures(as_forecaster(model), start, end, thresholds),
        "bias": bias_figures(recent_cell_hours, thresholds["prediction_bias"]),
    }


def level_figures(
    forecaster: BusynessForecaster,
    start: pd.Timestamp,
    end: pd.Timestamp,
    thresholds: dict[str, Any],
) -> dict[str, Any]:
    """Totals, the level test and its verdict for the model's cells x hours [start, end)."""
    rows, origin, horizon, target = window_rows(forecaster, start, end)
    first = int(forecaster.history_.positions(np.array([start.value]))[0])
    actual = forecaster.history_.counts[rows, target].astype(float)
    profile = forecaster.baseline_means(rows, origin, horizon)[0]
    served = served_means(forecaster, rows, origin, horizon)
    size = forecaster.bucket_distribution(bucket_index(np.array([24]))[0])[0]  # the day ahead's
    count_variance = float(np.sum(profile + (profile**2 / size if size else 0.0)))
    hours = len(np.unique(target))
    history = history_daily_totals(forecaster, first)
    spread = day_level_spread(history["total"].to_numpy(), history["weekday"].to_numpy())
    test = level_test(
        actual.sum(),
        profile.sum(),
        count_variance,
        spread=spread,
        days=hours / 24,
        history_days=first / 24,
    )
    change_limit, p_limit = thresholds["level_change"], thresholds["level_p_value"]
    return {
        "expected": (
            "the model's seasonal profile at the recent window's start: per model cell and"
            " recent hour, the mean count at that hour of the week over every earlier week"
        ),
        "window_start_utc": start.isoformat(),
        "window_end_utc": end.isoformat(),
        "hours": hours,
        "cells": len(forecaster.history_.cells),
        "actual_total": float(actual.sum()),
        "expected_total": float(profile.sum()),
        **test,
        "day_level_spread": spread,
        "served_forecast_total": float(served.sum()),
        "served_forecast_change": _change(actual.sum(), served.sum()),
        "change_threshold": change_limit,
        "p_value_threshold": p_limit,
        "fired": judge_level(test, change_limit, p_limit),
        "by_day": _by_day(
            forecaster.derived.calendar["date"][target],
            actual=actual,
            expected=profile,
            served_forecast=served,
        ),
    }


def bias_figures(recent_cell_hours: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """The day-ahead bias on the recent cell-hours of the model's cells, and its verdict."""
    known = recent_cell_hours.loc[recent_cell_hours[KNOWN_CELL]]
    bias = prediction_bias(known[PREDICTION].to_numpy(), known[TARGET].to_numpy())
    return {
        "forecast": "day-ahead (the recent_cell_hours forecasts), the model's cells",
        "rows": len(known),
        "mean_predicted": float(known[PREDICTION].mean()) if len(known) else 0.0,
        "mean_actual": float(known[TARGET].mean()) if len(known) else 0.0,
        "bias": bias,
        "threshold": threshold,
        "fired": bool(abs(bias) > threshold),
    }
