"""SHAP explanations of the forecaster's learned model, or a plain statement when there is none.

A learned forecaster (``gradient_boosting``, ``random_forest``) predicts ``base x ratio``: the
base is the cell's shrunk seasonal profile (floored at ``base_floor``; times last week's city
ratio with ``exposure="level_adjusted"``), the trees predict the ratio. ``shap.TreeExplainer``
(tree-path-dependent: exact, no background data) splits the trees' output for a row into one
contribution per feature, on the trees' own output scale:

- gradient boosting (Poisson loss): its raw score, the log of the ratio;
- the Poisson random forest: the ratio itself (the mean of its trees' leaves).

The base value plus every contribution is that output (``Explanation.output``). The served mean
blends the learned forecast with the two baselines per horizon bucket (``blend_weights_``), so
each row also carries the learned model's weight in its bucket: how much of the forecast the
explanation covers. A statistical baseline (``seasonal_naive``, ``level_adjusted``) has no
explainer; its explanation says so (``baseline_statement``).

``shap`` (which loads numba and llvmlite, ~1 s) is imported on the first explanation only:
loading the model, ``kedro`` and the server's start-up never pay for it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import distinct_pairs, utc_hour_ns
from geo_busyness.model.forecaster import (
    HORIZON_BUCKETS,
    LEARNED,
    BusynessForecaster,
    bucket_values,
)
from geo_busyness.model.geo import h3_cells
from geo_busyness.model.predict import as_forecaster
from geo_busyness.schemas import (
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    EXPLAIN_BASE,
    EXPLAIN_METHOD,
    EXPLAIN_OUTPUT,
    EXPLAIN_SCALE,
    EXPLAIN_TOP_K,
    LEARNED_WEIGHT,
    contribution_columns,
)

#: The output scale of each learned method's trees (what its contributions add up to).
SCALES = {
    "gradient_boosting": "log ratio to the cell's seasonal profile",
    "random_forest": "ratio to the cell's seasonal profile",
}
#: What each statistical forecaster (a baseline or the pooled level) forecasts.
_BASELINE_FORECASTS = {
    "seasonal_naive": "the cell's hour-of-week profile (its mean at the same hour of the week"
    " over all past weeks)",
    "level_adjusted": "the cell's hour-of-week profile (its mean at the same hour of the week"
    " over all past weeks) times the city's actual-to-profile ratio over the last week",
    "recent_level": "the cell's hour-of-week profile (its mean at the same hour of the week"
    " over all past weeks) times a weighted recent level (actual-to-profile ratios over the"
    " last hours, day and week, weights per horizon chosen on validation)",
    "pooled_level": "the cell's hour-of-week profile shrunk toward its level times its H3"
    " neighbours' weekly shape (a prior weight chosen on validation), times a weighted recent"
    " level",
}
#: Fitted regressor -> its TreeExplainer (built once per loaded model).
_EXPLAINERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Explanation:
    """SHAP values of forecast rows (no columns for a statistical baseline).

    ``features`` and ``contributions`` are (rows, features) in ``feature_names`` order;
    ``learned_weight`` is the learned model's blend weight in each row's horizon bucket.
    """

    method: str
    feature_names: tuple[str, ...]
    features: np.ndarray
    contributions: np.ndarray
    base_value: float
    learned_weight: np.ndarray

    @property
    def scale(self) -> str | None:
        """What the contributions add up to (None for a statistical baseline)."""
        return SCALES.get(self.method)

    @property
    def output(self) -> np.ndarray:
        """The learned model's output per row: base value + every contribution (NaN: none)."""
        return self.base_value + self.contributions.sum(axis=1)


def is_explainable(forecaster: BusynessForecaster) -> bool:
    """Whether the forecaster has a fitted learned tree model to explain."""
    return forecaster.method in LEARNED and getattr(forecaster, "regressor_", None) is not None


def baseline_statement(method: str) -> str:
    """Why a statistical baseline has no feature contributions, and what it forecasts."""
    forecast = _BASELINE_FORECASTS.get(method, "a seasonal profile of past counts")
    return (
        f"The served forecaster is the statistical baseline '{method}': its forecast is"
        f" {forecast}; there are no learned feature contributions."
    )


def learned_weights(forecaster: BusynessForecaster, horizon: np.ndarray) -> np.ndarray:
    """The learned model's weight in the blend of each horizon's bucket (1 when the forecaster
    has no blend, 0 for a statistical baseline)."""
    horizon = np.asarray(horizon)
    if not is_explainable(forecaster):
        return np.zeros(len(horizon))
    if forecaster.blend_weights_ is None:
        return np.ones(len(horizon))
    return bucket_values(horizon, forecaster.blend_weights_)[:, 0]


def describe(model: Any) -> dict[str, Any]:
    """What the explanations of this model are: its method, their scale, the learned model's
    weight per horizon bucket (hours ahead) and a sentence saying so."""
    forecaster = as_forecaster(model)
    method = forecaster.method
    if not is_explainable(forecaster):
        return {"method": method, "scale": None, "statement": baseline_statement(method)}
    lows = np.array([low for low, _ in HORIZON_BUCKETS])
    weights = {
        f"{low}-{high}": float(weight)
        for (low, high), weight in zip(
            HORIZON_BUCKETS, learned_weights(forecaster, lows), strict=True
        )
    }
    shares = ", ".join(f"{weight:.0%} at {bucket} h ahead" for bucket, weight in weights.items())
    scale = SCALES[method]
    return {
        "method": method,
        "scale": scale,
        "learned_weight_by_horizon_hours": weights,
        "statement": (
            f"Contributions are SHAP values (shap.TreeExplainer) of the learned {method} model,"
            f" on its output scale, the {scale}: the base value plus every feature's"
            " contribution is that output. The forecast blends the learned model with the"
            f" seasonal baselines; the learned model's weight is {shares}: an explanation"
            " covers that share of the forecast."
        ),
    }


def tree_explainer(regressor: Any) -> Any:
    """The ``shap.TreeExplainer`` of a fitted tree regressor (built once per regressor)."""
    explainer = _EXPLAINERS.get(regressor)
    if explainer is None:
        import shap  # noqa: PLC0415 - loads numba and llvmlite: only when explaining

        explainer = shap.TreeExplainer(regressor)
        _EXPLAINERS[regressor] = explainer
    return explainer


def shap_values(regressor: Any, features: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-row contributions (rows, features) of a tree regressor, and its base value."""
    explainer = tree_explainer(regressor)
    base = float(np.ravel(explainer.expected_value)[0])
    if not len(features):
        return np.empty((0, features.shape[1])), base
    # Additivity is checked by the tests (tests/model/test_explain.py), not on every call.
    values = explainer.shap_values(features, check_additivity=False)
    return np.asarray(values, dtype=float).reshape(features.shape), base


def explain_rows(
    forecaster: BusynessForecaster, rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray
) -> Explanation:
    """SHAP values of (history row, origin position, horizon) rows, as ``predict_rows`` sees them."""
    horizon = np.asarray(horizon)
    if not is_explainable(forecaster):
        empty = np.empty((len(horizon), 0))
        return Explanation(
            forecaster.method, (), empty, empty, float("nan"), np.zeros(len(horizon))
        )
    if len(horizon):
        features, _ = forecaster.design(rows, origin, horizon)
    else:
        features = np.empty((0, len(forecaster.feature_names_)))
    values, base = shap_values(forecaster.regressor_, features)
    return Explanation(
        forecaster.method,
        tuple(forecaster.feature_names_),
        features,
        values,
        base,
        learned_weights(forecaster, horizon),
    )


def explain_pairs(
    forecaster: BusynessForecaster, cells: np.ndarray, hours_ns: np.ndarray
) -> Explanation:
    """SHAP values of served (uint64 cell, UTC hour in int64 ns) pairs."""
    return explain_rows(forecaster, *forecaster.serving_rows(cells, hours_ns))


def top_contributions(explanation: Explanation, k: int) -> np.ndarray:
    """Feature positions of each row's ``k`` largest contributions by absolute value, largest
    first (ties in feature order); fewer columns when the model has fewer features."""
    k = min(int(k), explanation.contributions.shape[1])
    order = np.argsort(-np.abs(explanation.contributions), axis=1, kind="stable")
    return order[:, :k]


def contribution_table(
    explanation: Explanation, top_k: int, index: pd.Index | None = None
) -> pd.DataFrame:
    """``EXPLAIN_COLUMNS`` and the top ``top_k`` (feature, value, contribution) of each row;
    ranks past the model's features (and all of a baseline's) are empty."""
    n = len(explanation.learned_weight)
    table: dict[str, Any] = {
        EXPLAIN_METHOD: pd.Series([explanation.method] * n, dtype="string").array,
        EXPLAIN_SCALE: pd.Series([explanation.scale] * n, dtype="string").array,
        LEARNED_WEIGHT: explanation.learned_weight.astype(float),
        EXPLAIN_BASE: np.full(n, explanation.base_value),
        EXPLAIN_OUTPUT: explanation.output,
    }
    order = top_contributions(explanation, top_k)
    names = np.asarray(explanation.feature_names, dtype=object)
    rows = np.arange(n)
    for rank in range(int(top_k)):
        feature, value, contribution = contribution_columns(rank + 1)
        if rank < order.shape[1]:
            pick = order[:, rank]
            table[feature] = pd.array(names[pick], dtype="string")
            table[value] = explanation.features[rows, pick]
            table[contribution] = explanation.contributions[rows, pick]
        else:
            table[feature] = pd.array([None] * n, dtype="string")
            table[value] = table[contribution] = np.full(n, np.nan)
    return pd.DataFrame(table, index=index)


def global_summary(explanation: Explanation) -> pd.DataFrame:
    """Mean |contribution| and mean contribution per feature over the rows, largest first."""
    table = pd.DataFrame(
        {
            "feature": list(explanation.feature_names),
            "mean_abs_contribution": np.abs(explanation.contributions).mean(axis=0),
            "mean_contribution": explanation.contributions.mean(axis=0),
        }
    )
    return table.sort_values("mean_abs_contribution", ascending=False, ignore_index=True)


def explain_busyness(model: Any, queries: pd.DataFrame, top_k: int = EXPLAIN_TOP_K) -> pd.DataFrame:
    """``contribution_table`` of query rows (timestamp, lat, lon), indexed like ``queries``:
    the explanation of each row's ``predict_busyness`` answer (each distinct cell-hour once)."""
    forecaster = as_forecaster(model)
    cells = h3_cells(queries[EVENT_LAT], queries[EVENT_LON], forecaster.resolution)
    return _explain_distinct(
        forecaster, cells, utc_hour_ns(queries[EVENT_TIME]), top_k, queries.index
    )


def explain_cell_hours(
    model: Any, cells: np.ndarray, hours: Any, top_k: int = EXPLAIN_TOP_K
) -> pd.DataFrame:
    """``contribution_table`` of (cell, UTC hour) pairs, as ``predict_cell_hours`` answers them
    (fresh 0-based index)."""
    cells = np.asarray(cells, dtype=np.uint64)
    hours_ns = utc_hour_ns(pd.Series(hours))
    return _explain_distinct(
        as_forecaster(model), cells, hours_ns, top_k, pd.RangeIndex(len(cells))
    )


def _explain_distinct(
    forecaster: BusynessForecaster,
    cells: np.ndarray,
    hours_ns: np.ndarray,
    top_k: int,
    index: pd.Index,
) -> pd.DataFrame:
    """Explain each distinct (cell, hour) pair once; one table row per input pair."""
    if not len(cells):
        empty = np.empty(0, dtype=np.int64)
        return contribution_table(explain_rows(forecaster, empty, empty, empty), top_k, index)
    distinct, inverse = distinct_pairs(cells, hours_ns)
    explanation = explain_pairs(forecaster, cells[distinct], hours_ns[distinct])
    table = contribution_table(explanation, top_k)
    return table.iloc[inverse].set_axis(index)
