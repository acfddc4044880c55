"""Plotly figures of the test-window forecast, its errors and the train-window demand shape.

Every figure is a plain ``go.Figure``: the catalog saves it as plotly JSON (kedro-viz previews
those); ``page`` puts them on self-contained HTML pages (plotly.js embedded, no CDN). Every time
axis is in one time zone, the city's (``run_context``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from geo_busyness.errors import ParameterValueError
from geo_busyness.model.cell_hours import hour_of_week
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.report_header import caption as context_caption
from geo_busyness.report_header import report_context
from geo_busyness.schemas import BASELINE, H3_CELL, HORIZON, HOUR, PREDICTION, TARGET

from .maps import equal_aspect, hexagon_traces
from .outputs import with_caption
from .street_map import hourly_values, street_map_figure

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MODEL_COLOUR, _BASELINE_COLOUR, _ACTUAL_COLOUR = "#1f77b4", "#ff7f0e", "#2b2b2b"
_MIN_GROUP = 5
#: Predicted-vs-actual heatmap: at most this many bins per axis; the axes' first view ends at
#: this quantile (the low counts most cell-hours have stay wide; zooming out shows the rest).
_MAX_BINS = 60
_AXIS_QUANTILE = 0.995


def run_context(
    evaluation_report: dict[str, Any],
    windows: dict[str, str],
    model: BusynessForecaster,
    params: dict[str, Any],
) -> tuple[dict[str, Any], str, str]:
    """The reports' header (model, data window, time zone, gate, headline metrics), the caption
    every figure title ends with, and the one time zone of every figure: the city's (the
    model's calendar zone) unless ``reporting.display_timezone`` names another."""
    timezone = params.get("display_timezone") or model.timezone
    context = report_context(evaluation_report, windows, timezone)
    return context, context_caption(context), timezone


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    """Fail with the dataset's name and the missing columns, not a KeyError deep in pandas."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(frame.columns)}")


def _with_baseline(test_predictions: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Model and baseline predictions side by side, one row per test cell-hour."""
    _require(test_predictions, (H3_CELL, HOUR, PREDICTION, TARGET), "test_predictions")
    _require(baseline, (H3_CELL, HOUR, BASELINE), "baseline_test_predictions")
    both = test_predictions.merge(
        baseline[[H3_CELL, HOUR, BASELINE]], on=[H3_CELL, HOUR], how="left", validate="1:1"
    )
    if both[BASELINE].isna().any():
        raise ValueError(
            f"baseline_test_predictions misses {int(both[BASELINE].isna().sum())} of the "
            "test_predictions cell-hours: expected the same test panel"
        )
    both["model_error"] = (both[PREDICTION] - both[TARGET]).abs()
    both["baseline_error"] = (both[BASELINE] - both[TARGET]).abs()
    return both


def predicted_vs_actual_figure(
    test_predictions: pd.DataFrame, params: dict[str, Any], caption: str | None = None
) -> go.Figure:
    """How many test cell-hours had each (actual, predicted) pair: a count heatmap on a log
    colour scale (thousands of quiet cell-hours at 0 stay one readable cell), the mean
    prediction per actual count, the perfect-forecast line, and a seeded, jittered sample of
    at most ``max_scatter_points`` cell-hours (hidden until picked in the legend)."""
    _require(test_predictions, (PREDICTION, TARGET), "test_predictions")
    actual = test_predictions[TARGET].to_numpy(float)
    predicted = test_predictions[PREDICTION].to_numpy(float)
    counts, x_mid, y_mid = count_grid(actual, predicted)
    by_actual = test_predictions.groupby(TARGET)[PREDICTION].agg(["mean", "size"])
    mean_by_actual = by_actual.loc[by_actual["size"] >= _MIN_GROUP, "mean"]  # skip lone points
    top = float(max(actual.max(initial=0), predicted.max(initial=0), 1))
    sample = test_predictions
    if len(sample) > params["max_scatter_points"]:
        sample = sample.sample(params["max_scatter_points"], random_state=params["random_state"])
    jitter = np.random.default_rng(params["random_state"]).uniform(-0.3, 0.3, len(sample))
    shade = np.where(counts > 0, np.log10(np.maximum(counts, 1)), np.nan)  # empty bins: blank
    decades = np.arange(0, int(np.nanmax(shade, initial=0)) + 1)
    figure = go.Figure(
        [
            go.Heatmap(
                x=x_mid,
                y=y_mid,
                z=shade.T,
                customdata=counts.T,
                colorscale=[[0.0, "#c6dbef"], [1.0, "#08306b"]],  # 1 cell-hour still shows
                zmin=0,
                colorbar={
                    "title": {"text": "cell-hours"},
                    "tickvals": decades,
                    "ticktext": [f"{10**d:,}" for d in decades],
                },
                hovertemplate="actual %{x}, predicted %{y:.2f}: %{customdata:,} cell-hours"
                "<extra></extra>",
                name="cell-hours (count)",
            ),
            go.Scatter(
                x=mean_by_actual.index,
                y=mean_by_actual.to_numpy(),
                mode="lines+markers",
                line={"color": _BASELINE_COLOUR},
                name=f"mean prediction (actual values seen >= {_MIN_GROUP} times)",
            ),
            go.Scatter(
                x=[0, top],
                y=[0, top],
                mode="lines",
                line={"dash": "dash", "color": "grey"},
                name="perfect forecast",
            ),
            go.Scatter(
                x=sample[TARGET].to_numpy(float) + jitter,
                y=sample[PREDICTION],
                mode="markers",
                marker={"size": 4, "opacity": 0.4, "color": _ACTUAL_COLOUR},
                name=f"cell-hours, jittered ({len(sample):,} drawn)",
                visible="legendonly",
            ),
        ]
    )
    x_high, y_high = (
        float(np.quantile(v, _AXIS_QUANTILE)) if len(v) else 1.0 for v in (actual, predicted)
    )
    return figure.update_layout(
        title=with_caption(
            f"Predicted vs actual busyness, test window ({len(test_predictions):,} cell-hours;"
            f" axes to the {_AXIS_QUANTILE:.1%} quantile, zoom out for the rest)",
            caption,
        ),
        xaxis={"title": "actual events per cell-hour", "range": [-0.5, max(x_high, 1.0) + 1.5]},
        yaxis={
            "title": "predicted events per cell-hour (mean)",
            "range": [0, max(y_high, 1.0) * 1.15],
        },
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.2},
    )


def count_grid(actual: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cell-hours per (actual, predicted) bin: one bin per actual count (up to ``_MAX_BINS``
    counts, then equal widths) and ``_MAX_BINS`` equal prediction bins from 0; the counts
    (actual bins x predicted bins) and the bin midpoints."""
    high = float(max(actual.max(initial=0), 0))
    if high + 1 <= _MAX_BINS:
        x_edges = np.arange(-0.5, high + 1.0)
    else:
        x_edges = np.linspace(-0.5, high + 0.5, _MAX_BINS + 1)
    y_edges = np.linspace(
        0.0, max(float(predicted.max(initial=0)), 1.0) * (1 + 1e-9), _MAX_BINS + 1
    )
    counts, _, _ = np.histogram2d(actual, predicted, bins=[x_edges, y_edges])
    return counts.astype(int), (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2


def forecast_timeline_figure(
    test_predictions: pd.DataFrame,
    baseline_test_predictions: pd.DataFrame,
    timezone: str = "UTC",
    caption: str | None = None,
) -> go.Figure:
    """City-wide events per hour over the test window, in local time: actual, model, baseline
    (the pipeline passes the city's zone; UTC when called without one)."""
    both = _with_baseline(test_predictions, baseline_test_predictions)
    totals = both.groupby(HOUR)[[TARGET, PREDICTION, BASELINE]].sum()
    totals.index = _local_wall_clock(totals.index, timezone)
    lines = (
        (TARGET, "actual", _ACTUAL_COLOUR),
        (PREDICTION, "model", _MODEL_COLOUR),
        (BASELINE, "seasonal-naive baseline", _BASELINE_COLOUR),
    )
    figure = go.Figure(
        [
            go.Scatter(
                x=totals.index, y=totals[column], mode="lines", name=label, line={"color": colour}
            )
            for column, label, colour in lines
        ]
    )
    return figure.update_layout(
        title=with_caption("City-wide events per hour, test window", caption),
        xaxis_title=f"hour ({timezone})",
        yaxis_title="events per hour",
    )


def error_by_hour_figure(
    test_predictions: pd.DataFrame,
    baseline_test_predictions: pd.DataFrame,
    timezone: str,
    caption: str | None = None,
) -> go.Figure:
    """Mean absolute error per cell-hour by local hour of day: model beside baseline."""
    both = _with_baseline(test_predictions, baseline_test_predictions)
    local_hour = both[HOUR].dt.tz_convert(timezone).dt.hour
    errors = both.groupby(local_hour)[["model_error", "baseline_error"]].mean()
    figure = go.Figure(
        [
            go.Bar(
                x=errors.index, y=errors["model_error"], name="model", marker_color=_MODEL_COLOUR
            ),
            go.Bar(
                x=errors.index,
                y=errors["baseline_error"],
                name="seasonal-naive baseline",
                marker_color=_BASELINE_COLOUR,
            ),
        ]
    )
    return figure.update_layout(
        title=with_caption("Mean absolute error by hour of day, test window", caption),
        xaxis_title=f"hour of day ({timezone})",
        yaxis_title="MAE (events per cell-hour)",
        barmode="group",
    )


def error_by_cell_figure(
    test_predictions: pd.DataFrame,
    baseline_test_predictions: pd.DataFrame,
    caption: str | None = None,
) -> go.Figure:
    """A hexagon map of the model's mean absolute error per cell over the test window."""
    both = _with_baseline(test_predictions, baseline_test_predictions)
    per_cell = both.groupby(H3_CELL).agg(
        mae=("model_error", "mean"),
        baseline_mae=("baseline_error", "mean"),
        mean_busyness=(TARGET, "mean"),
    )
    hover = [
        f"<br>baseline MAE: {base:.2f}<br>mean busyness: {mean:.2f}"
        for base, mean in zip(per_cell["baseline_mae"], per_cell["mean_busyness"], strict=True)
    ]
    traces = hexagon_traces(
        list(per_cell.index),
        per_cell["mae"].to_numpy(),
        value_label="MAE",
        cmin=0.0,
        cmax=float(per_cell["mae"].max()),
        hover_extra=hover,
    )
    figure = go.Figure(traces)
    equal_aspect(figure, np.concatenate([np.asarray(trace.y) for trace in traces]), [""])
    return figure.update_layout(
        title=with_caption("Mean absolute error per H3 cell, test window", caption),
        plot_bgcolor="white",
    )


def feature_importance_figure(
    feature_importance: pd.DataFrame, caption: str | None = None
) -> go.Figure:
    """Permutation importance of the ratio model (Poisson-deviance increase when a feature is
    shuffled), largest on top; a note instead when a statistical baseline was chosen."""
    columns = ("feature", "importance_mean", "importance_std")
    _require(feature_importance, columns, "feature_importance")
    ordered = feature_importance.sort_values("importance_mean")
    figure = go.Figure(
        go.Bar(
            x=ordered["importance_mean"],
            y=ordered["feature"],
            orientation="h",
            error_x={"type": "data", "array": ordered["importance_std"].to_numpy()},
            marker_color=_MODEL_COLOUR,
            name="deviance increase",
        )
    )
    title = "Permutation importance: loss increase on the test window"
    if ordered.empty:
        title += ": the chosen forecaster is a statistical baseline (no learned features)"
    return figure.update_layout(
        title=with_caption(title, caption),
        xaxis_title="Poisson-deviance increase of the ratio model when the feature is permuted",
        height=max(350, 40 * len(ordered) + 120),
    )


def busyness_by_hour_of_week_figure(
    train_panel: pd.DataFrame, timezone: str, caption: str | None = None
) -> go.Figure:
    """City-wide events per hour by local hour of the week over the train window: mean and range
    across the train weeks (the shape the seasonal-naive baseline predicts)."""
    _require(train_panel, (HOUR, TARGET), "train_panel")
    totals = train_panel.groupby(HOUR)[TARGET].sum()
    local = pd.Series(totals.index, index=totals.index).dt.tz_convert(timezone)
    by_slot = totals.groupby(hour_of_week(local)).agg(["mean", "min", "max"])
    slots = by_slot.index.to_numpy()
    band = {"mode": "lines", "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"}
    figure = go.Figure(
        [
            go.Scatter(x=slots, y=by_slot["min"], name="weekly minimum", **band),
            go.Scatter(
                x=slots,
                y=by_slot["max"],
                name="range across weeks",
                fill="tonexty",
                fillcolor="rgba(31,119,180,0.2)",
                **{**band, "showlegend": True},
            ),
            go.Scatter(
                x=slots, y=by_slot["mean"], mode="lines", name="mean", line={"color": _MODEL_COLOUR}
            ),
        ]
    )
    return figure.update_layout(
        title=with_caption("City-wide events per hour by hour of the week, train window", caption),
        xaxis={
            "title": f"hour of the week ({timezone})",
            "tickvals": [24 * day for day in range(7)],
            "ticktext": list(_DAYS),
        },
        yaxis_title="events per hour",
    )


def select_map_hour(test_predictions: pd.DataFrame, map_hour: str | None) -> pd.Timestamp:
    """The hour to map: ``map_hour`` (ISO, naive = UTC) if given, else the busiest test hour."""
    _require(test_predictions, (HOUR, TARGET), "test_predictions")
    hours = test_predictions[HOUR]
    if map_hour is None:
        totals = test_predictions.groupby(HOUR)[TARGET].sum()
        return totals.index[int(np.argmax(totals.to_numpy()))]
    chosen = pd.Timestamp(map_hour)
    chosen = chosen.tz_localize("UTC") if chosen.tzinfo is None else chosen.tz_convert("UTC")
    if not (hours == chosen).any():
        raise ParameterValueError(
            f"reporting.map_hour={map_hour!r} is not an hour of the test window: expected a whole "
            f"UTC hour from {hours.min().isoformat()} to {hours.max().isoformat()}, or null",
            "set reporting.map_hour to one of those hours, or to null for the busiest test hour"
            " (conf/<env>/parameters_reporting.yml or --params).",
        )
    return chosen


def busyness_map(
    test_predictions: pd.DataFrame,
    params: dict[str, Any],
    timezone: str | None = None,
    caption: str | None = None,
) -> go.Figure:
    """Actual and predicted busyness per H3 cell on a street map, side by side on one robust
    colour scale, with a slider over the day-ahead horizon: the local day of the map hour
    (``map_hour``, else the busiest test hour), shown first. ``timezone``: the city's (the
    pipeline passes it), else ``params["display_timezone"]``, else UTC."""
    timezone = timezone or params.get("display_timezone") or "UTC"
    hour = select_map_hour(test_predictions, params["map_hour"])
    local = test_predictions[HOUR].dt.tz_convert(timezone)
    day = test_predictions.loc[local.dt.date == hour.tz_convert(timezone).date()]
    hours = pd.DatetimeIndex(sorted(day[HOUR].unique()))
    cells = sorted(test_predictions[H3_CELL].unique())
    panels = {
        "actual": hourly_values(day, cells, hours, TARGET),
        "predicted": hourly_values(day, cells, hours, PREDICTION),
    }
    horizon = day.groupby(HOUR)[HORIZON].first() if HORIZON in day.columns else None
    labels = [
        f"{moment.tz_convert(timezone):%a %H:00}"
        + (f" (h+{int(horizon[moment])})" if horizon is not None else "")
        for moment in hours
    ]
    return street_map_figure(
        cells,
        hours,
        panels,
        labels=labels,
        active=int(np.flatnonzero(hours == hour)[0]),
        title=with_caption(
            f"Busyness per H3 cell, {len(cells):,} cells, hour by hour on"
            f" {hour.tz_convert(timezone):%a %Y-%m-%d} ({timezone}); first shown:"
            f" {'the busiest hour' if params['map_hour'] is None else 'map_hour'},"
            f" {hour.tz_convert(timezone):%H:00}",
            caption,
        ),
    )


def _local_wall_clock(index: pd.Index, timezone: str) -> pd.DatetimeIndex:
    """UTC times as the local wall clock (naive), so plotly's date axis shows local hours."""
    return pd.DatetimeIndex(index).tz_convert(timezone).tz_localize(None)
