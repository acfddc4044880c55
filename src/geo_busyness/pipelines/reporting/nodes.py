"""Plotly figures of the test-window forecast, its errors and the train-window demand shape.

Every figure is a plain ``go.Figure``: the catalog saves it as plotly JSON (kedro-viz previews
those) or as one self-contained HTML file (plotly.js embedded, no CDN, no map tiles).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from geo_busyness.model.cell_hours import hour_of_week
from geo_busyness.schemas import BASELINE, H3_CELL, HOUR, PREDICTION, TARGET

from .maps import equal_aspect, hexagon_traces

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MODEL_COLOUR, _BASELINE_COLOUR, _ACTUAL_COLOUR = "#1f77b4", "#ff7f0e", "#2b2b2b"
_MIN_GROUP = 5


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


def predicted_vs_actual_figure(test_predictions: pd.DataFrame, params: dict[str, Any]) -> go.Figure:
    """Predicted against actual busyness per test cell-hour (a seeded sample if large)."""
    _require(test_predictions, (PREDICTION, TARGET), "test_predictions")
    sample = test_predictions
    if len(sample) > params["max_scatter_points"]:
        sample = sample.sample(params["max_scatter_points"], random_state=params["random_state"])
    by_actual = test_predictions.groupby(TARGET)[PREDICTION].agg(["mean", "size"])
    mean_by_actual = by_actual.loc[by_actual["size"] >= _MIN_GROUP, "mean"]  # skip lone points
    top = float(max(test_predictions[TARGET].max(), test_predictions[PREDICTION].max(), 1))
    figure = go.Figure(
        [
            go.Scatter(
                x=sample[TARGET],
                y=sample[PREDICTION],
                mode="markers",
                marker={"size": 5, "opacity": 0.35, "color": _MODEL_COLOUR},
                name="cell-hour",
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
        ]
    )
    return figure.update_layout(
        title=f"Predicted vs actual busyness, test window ({len(test_predictions):,} cell-hours)",
        xaxis_title="actual events per cell-hour",
        yaxis_title="predicted events per cell-hour",
    )


def forecast_timeline_figure(
    test_predictions: pd.DataFrame, baseline_test_predictions: pd.DataFrame
) -> go.Figure:
    """City-wide events per hour over the test window: actual, model and baseline."""
    both = _with_baseline(test_predictions, baseline_test_predictions)
    totals = both.groupby(HOUR)[[TARGET, PREDICTION, BASELINE]].sum()
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
        title="City-wide events per hour, test window",
        xaxis_title="hour (UTC)",
        yaxis_title="events per hour",
    )


def error_by_hour_figure(
    test_predictions: pd.DataFrame,
    baseline_test_predictions: pd.DataFrame,
    params: dict[str, Any],
) -> go.Figure:
    """Mean absolute error per cell-hour by local hour of day: model beside baseline."""
    both = _with_baseline(test_predictions, baseline_test_predictions)
    local_hour = both[HOUR].dt.tz_convert(params["display_timezone"]).dt.hour
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
        title="Mean absolute error by hour of day, test window",
        xaxis_title=f"hour of day ({params['display_timezone']})",
        yaxis_title="MAE (events per cell-hour)",
        barmode="group",
    )


def error_by_cell_figure(
    test_predictions: pd.DataFrame, baseline_test_predictions: pd.DataFrame
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
        title="Mean absolute error per H3 cell, test window", plot_bgcolor="white"
    )


def feature_importance_figure(feature_importance: pd.DataFrame) -> go.Figure:
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
    title = "Permutation feature importance, test window"
    if ordered.empty:
        title += ": the chosen forecaster is a statistical baseline (no learned features)"
    return figure.update_layout(
        title=title,
        xaxis_title="Poisson-deviance increase of the ratio model when the feature is permuted",
        height=max(350, 40 * len(ordered) + 120),
    )


def busyness_by_hour_of_week_figure(train_panel: pd.DataFrame, params: dict[str, Any]) -> go.Figure:
    """City-wide events per hour by local hour of the week over the train window: mean and range
    across the train weeks (the shape the seasonal-naive baseline predicts)."""
    _require(train_panel, (HOUR, TARGET), "train_panel")
    totals = train_panel.groupby(HOUR)[TARGET].sum()
    local = pd.Series(totals.index, index=totals.index).dt.tz_convert(params["display_timezone"])
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
        title="City-wide events per hour by hour of the week, train window",
        xaxis={
            "title": f"hour of the week ({params['display_timezone']})",
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
        raise ValueError(
            f"reporting.map_hour={map_hour!r} is not an hour of the test window: expected a whole "
            f"UTC hour from {hours.min().isoformat()} to {hours.max().isoformat()}, or null"
        )
    return chosen


def busyness_map(test_predictions: pd.DataFrame, params: dict[str, Any]) -> go.Figure:
    """H3 hexagons coloured by actual and by predicted busyness for one test hour, side by side,
    on one colour scale."""
    hour = select_map_hour(test_predictions, params["map_hour"])
    at_hour = test_predictions.loc[test_predictions[HOUR] == hour].sort_values(H3_CELL)
    cells = list(at_hour[H3_CELL])
    top = float(max(at_hour[TARGET].max(), at_hour[PREDICTION].max(), 1))
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("actual", "predicted"), horizontal_spacing=0.08
    )
    for col, column in ((1, TARGET), (2, PREDICTION)):
        for trace in hexagon_traces(
            cells,
            at_hour[column].to_numpy(),
            value_label="events",
            cmin=0.0,
            cmax=top,
            show_scale=col == 2,
        ):
            figure.add_trace(trace, row=1, col=col)
    latitudes = np.concatenate([np.asarray(trace.y) for trace in figure.data])
    equal_aspect(figure, latitudes, ["", "2"])
    local = hour.tz_convert(params["display_timezone"])
    return figure.update_layout(
        title=(
            f"Busyness per H3 cell, {hour:%Y-%m-%d %H:00} UTC "
            f"({local:%a %H:00} {params['display_timezone']}): {len(cells)} cells"
        ),
        plot_bgcolor="white",
        height=650,
    )


def figures_page(**figures: go.Figure) -> str:
    """One self-contained HTML page with every figure (plotly.js embedded once, no CDN)."""
    parts = [
        pio.to_html(figure, full_html=False, include_plotlyjs=index == 0, default_height="520px")
        for index, figure in enumerate(figures.values())
    ]
    body = "\n".join(
        f'<section id="{name}">{part}</section>' for name, part in zip(figures, parts, strict=True)
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>geo-busyness report</title>'
        f"</head><body><h1>geo-busyness: test-window report</h1>\n{body}\n</body></html>\n"
    )
