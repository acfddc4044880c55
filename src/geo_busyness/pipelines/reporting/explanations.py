"""SHAP summary of the chosen forecaster over the test window: a table and a matplotlib figure.

The rows are a seeded sample of the test window's day-ahead rows (origins at local midnight,
1-24 h ahead), explained by ``geo_busyness.model.explain``. A statistical baseline has no
learned feature contributions: the summary and the figure say so instead.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.explain import (
    Explanation,
    describe,
    explain_rows,
    global_summary,
    is_explainable,
)
from geo_busyness.model.forecaster import BusynessForecaster, horizon_pairs

#: A matplotlib Figure: typed loosely, since Kedro resolves node annotations at run time and
#: matplotlib is imported only when a figure is drawn.
Figure = Any

#: Rows of the sample: day-ahead forecasts (the headline product).
_HORIZON_HOURS = 24
_BAR_COLOUR = "#1f77b4"


def day_ahead_sample(
    model: BusynessForecaster, windows: dict[str, str], max_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded sample of (row, origin, horizon): every known cell x every local midnight of the
    test window x 1-24 h ahead, targets inside the window."""
    history = model.history_
    start, end = history.positions(
        np.array([pd.Timestamp(windows[key]).value for key in ("test_start", "test_end")])
    )
    hours = np.arange(max(int(start), 0), min(int(end), history.hours))
    midnights = hours[model.derived.calendar["hour"][hours] == 0]
    origin, horizon = horizon_pairs(midnights, np.full(len(midnights), _HORIZON_HOURS), int(end))
    cells = len(history.cells)
    total = len(origin) * cells
    pick = np.random.default_rng(seed).choice(total, min(int(max_rows), total), replace=False)
    pick = np.sort(pick)
    return pick % cells, origin[pick // cells], horizon[pick // cells]


def shap_summary(
    model: BusynessForecaster,
    windows: dict[str, str],
    params: dict[str, Any],
    caption: str | None = None,
) -> tuple[dict[str, Any], Figure]:
    """The global SHAP summary (mean |contribution| per feature) of the test-window sample, and
    its figure (its title ends with ``caption``: model version and data window); for a
    statistical baseline, the statement that there is none."""
    settings = params["explanations"]
    about = describe(model)
    sample = {
        "rows": "day-ahead rows of the test window (origins at local midnight, 1-24 h ahead),"
        f" a seeded sample of at most {settings['rows']:,}",
        "test_start": windows["test_start"],
        "test_end": windows["test_end"],
    }
    if not is_explainable(model):
        return {**about, "sample": sample, "features": []}, _statement_figure(about, caption)
    rows, origin, horizon = day_ahead_sample(
        model, windows, settings["rows"], params["random_state"]
    )
    explanation = explain_rows(model, rows, origin, horizon)
    table = global_summary(explanation)
    summary = {
        **about,
        "sample": {**sample, "rows_explained": len(rows)},
        "base_value": explanation.base_value,
        "features": table.to_dict(orient="records"),
    }
    figure = _summary_figure(
        table.head(settings["features"]), explanation, about, params["random_state"], caption
    )
    return summary, figure


def _summary_figure(
    table: pd.DataFrame,
    explanation: Explanation,
    about: dict[str, Any],
    seed: int,
    caption: str | None = None,
) -> Figure:
    """Mean |SHAP| of the features in ``table`` (bars) beside each row's SHAP value coloured by
    the feature's value (low to high within the feature; grey: missing), largest on top."""
    from matplotlib import colormaps  # noqa: PLC0415 - loaded only when reporting
    from matplotlib.cm import ScalarMappable  # noqa: PLC0415
    from matplotlib.colors import Normalize  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    positions = [explanation.feature_names.index(name) for name in table["feature"]]
    contributions = explanation.contributions[:, positions]
    features = explanation.features[:, positions]
    rows, n = contributions.shape
    figure = Figure(figsize=(13, 2.4 + 0.42 * n), layout="constrained")
    bars, swarm = figure.subplots(1, 2, sharey=True, width_ratios=[1, 1.6])
    y = np.arange(n)[::-1]
    bars.barh(y, table["mean_abs_contribution"], color=_BAR_COLOUR)
    bars.set_yticks(y, labels=table["feature"])
    bars.set_xlabel(f"mean |SHAP value| ({about['scale']})")
    cmap = colormaps["coolwarm"]
    ranks = pd.DataFrame(features).rank(pct=True).to_numpy()
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, contributions.shape)
    level = y[None, :] + jitter
    known = ~np.isnan(ranks)
    swarm.scatter(contributions[~known], level[~known], s=5, color="#9e9e9e", alpha=0.5)
    swarm.scatter(
        contributions[known], level[known], s=5, c=ranks[known], cmap=cmap, vmin=0, vmax=1
    )
    swarm.axvline(0.0, color="black", linewidth=0.8)
    swarm.set_xlabel(f"SHAP value per row ({about['scale']})")
    colour_bar = figure.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=swarm, pad=0.01)
    colour_bar.set_ticks([0, 1], labels=["low", "high"])
    colour_bar.set_label("feature value (within the feature)")
    weights = ", ".join(
        f"{bucket} h: {weight:.0%}"
        for bucket, weight in about["learned_weight_by_horizon_hours"].items()
    )
    figure.suptitle(
        f"SHAP values of the learned {about['method']} model, {rows:,} day-ahead rows of the"
        f" test window\nThe forecast blends it with the seasonal baselines; its weight by"
        f" horizon: {weights}" + (f"\n{caption}" if caption else "")
    )
    return figure


def _statement_figure(about: dict[str, Any], caption: str | None = None) -> Figure:
    """A figure that says why there is nothing to plot."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - loaded only when reporting

    figure = Figure(figsize=(10, 2.5))
    figure.text(
        0.5, 0.5, textwrap.fill(about["statement"], 90), ha="center", va="center", wrap=True
    )
    title = "SHAP summary: no learned model to explain"
    figure.suptitle(f"{title}\n{caption}" if caption else title)
    return figure
