"""The chosen forecaster refitted, its rolling-origin test backtest beside the three baselines
and the serving champion, the quality gate, the refit through the end of the data, and the
evaluation report (candidates and the choice: ``candidates.py``; registration:
``registration.py``).

The chosen one is refitted on everything before the test window with the weights, sizes and
median rules validation chose, and the test window is scored on exactly the same cells x hours
for all; what is registered is then refitted through the data's end.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split

from geo_busyness.metrics import regression_metrics
from geo_busyness.model.cell_hours import HOUR_NS, utc_hour_ns
from geo_busyness.model.features import REFERENCE_FEATURES, BusynessFeatures
from geo_busyness.model.forecaster import (
    BASELINES,
    POOLED,
    BusynessForecaster,
)
from geo_busyness.model.geo import cell_names
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.backtest import backtest_means, paired_noise, score, skill
from geo_busyness.pipelines.modeling.candidates import (
    forecaster_for,
    window_position,
    with_best_params,
)
from geo_busyness.pipelines.modeling.champion import (
    champion_on_history,
    champion_predictor,
    champion_reasons,
    verdict,
)
from geo_busyness.pipelines.modeling.selection import REFERENCE
from geo_busyness.schemas import (
    BASELINE,
    CELL,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    PREDICTION,
    TARGET,
)

logger = logging.getLogger(__name__)

#: The product whose rows (every test hour exactly once) give the headline metrics and figures.
HEADLINE_PRODUCT = "day_ahead"


def configured(model: BusynessForecaster, selection: dict[str, Any]) -> BusynessForecaster:
    """``model`` with what validation chose: recent-level and combination weights, the sizes
    and median rules per horizon bucket (the latter only for the chosen method)."""
    model.recency_weights_ = selection.get("recency_weights")
    if model.method == POOLED and selection.get("pool_weeks") is not None:
        model.pool_weeks_ = selection["pool_weeks"]
        model.pool_adjacent_weeks_ = selection.get("pool_adjacent_weeks") or 0.0
        model.recency_weights_ = selection["pooled_recency_weights"]
    if model.method == selection["chosen"]:
        model.size_ = selection["negative_binomial_size"]
        model.median_rule_ = selection["median_rule"]
        model.blend_weights_ = selection["blend_weights"].get(model.method)
    return model


def refit_chosen(
    selection: dict[str, Any],
    history: CountHistory,
    cell_features: BusynessFeatures,
    windows: dict[str, str],
    params: dict[str, Any],
) -> BusynessForecaster:
    """The chosen forecaster fitted on everything before the test window (what the test
    backtest judges), with the weights, sizes and median rules validation chose.

    Its history runs to the data's end; every feature still comes from before each origin.
    """
    chosen = selection["chosen"]
    end = window_position(history, windows, "test_start")
    model = forecaster_for(chosen, history, params)
    search = selection.get("random_forest_search")
    if chosen == "random_forest" and search:  # the grid was searched on train: reuse its best
        with_best_params(model, search["best_params"])
    return configured(model.fit(history, cell_features, end), selection)


def refit_through_end(
    evaluated: BusynessForecaster, selection: dict[str, Any]
) -> BusynessForecaster:
    """The judged forecaster refitted through the end of the data (test window included), with
    the same choices: what is registered and served has seen the latest level; the test
    backtest of ``evaluated`` stays its evidence."""
    if evaluated.regressor_ is None:  # a baseline: nothing to learn, it knows every count
        model = copy.copy(evaluated)
        model.fitted_through_ns_ = evaluated.history_.end_ns
        return model
    model = clone(evaluated).fit(evaluated.history_, evaluated.cell_features_)
    model.search_ = evaluated.search_
    return configured(model, selection)


def backtest_test_window(
    model: BusynessForecaster,
    selection: dict[str, Any],
    champion: dict[str, Any],
    windows: dict[str, str],
    params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The test backtest of the model beside the three baselines and the serving champion
    (same cells x hours), and the day-ahead rows (every test hour once) for the figures: model
    and baseline tables."""
    history = model.history_
    baselines = {
        name: configured(
            forecaster_for(name, history, params).fit(history, model.cell_features_), selection
        )
        for name in BASELINES
    }
    for baseline in baselines.values():  # a baseline is scored by its plain Poisson median
        baseline.size_, baseline.median_rule_ = None, None
    forecasters = {"model": model, **baselines}
    start = window_position(history, windows, "test_start")
    end = window_position(history, windows, "test_end")
    others, champion_model, comparison = _champion_column(model, champion)
    means = backtest_means(forecasters, start, end, others)
    distributions = forecasters | ({"champion": champion_model} if others else {})
    scores = score(means, distributions, reference=REFERENCE)
    headline = means[HEADLINE_PRODUCT]
    metrics = {
        "backtest": scores,
        "headline_product": HEADLINE_PRODUCT,
        "model_method": model.method,
        "model": _headline(headline, "model", model),
        "seasonal_naive_baseline": _headline(headline, REFERENCE, baselines[REFERENCE]),
        "level_adjusted_baseline": _headline(headline, "level_adjusted", baselines[REFERENCE]),
        "recent_level_baseline": _headline(headline, "recent_level", baselines[REFERENCE]),
        "headline_noise": _headline_noise(headline, model, baselines[REFERENCE]),
        "rows": len(headline),
        "origin_hours": {name: int(table["origin"].nunique()) for name, table in means.items()},
        "champion_comparison": comparison,
    }
    if others:
        comparison["headline"] = _headline(headline, "champion", champion_model)
    return metrics, *_prediction_tables(model, headline)


def _champion_column(
    model: BusynessForecaster, champion: dict[str, Any]
) -> tuple[dict[str, Any], BusynessForecaster | None, dict[str, Any]]:
    """The champion's predictor and model for the backtest, and what the comparison is."""
    comparison = {key: champion.get(key) for key in ("model_name", "alias", "version")}
    if champion.get("model") is None:
        return {}, None, comparison | {"status": "none", "reason": champion.get("reason")}
    extended, reason = champion_on_history(champion["model"], model)
    if extended is None:
        logger.warning("Champion version %s not scored: %s", champion["version"], reason)
        return {}, None, comparison | {"status": "incomparable", "reason": reason}
    predictor = champion_predictor(extended, model.history_)
    return (
        {"champion": predictor},
        extended,
        comparison
        | {
            "status": "scored",
            "reason": reason,
        },
    )


def _headline(table: pd.DataFrame, name: str, distribution: BusynessForecaster) -> dict[str, float]:
    """Metrics of one forecaster over the headline rows (mean by R²/RMSE/deviance, P50 by MAE)."""
    y, mean = table["actual"].to_numpy(), table[name].to_numpy()
    metrics = regression_metrics(y, mean)
    p50 = distribution.quantiles(mean, table[HORIZON].to_numpy())[1]
    metrics["mae"] = float(np.mean(np.abs(y - p50)))
    return metrics


def _headline_noise(
    table: pd.DataFrame, model: BusynessForecaster, naive: BusynessForecaster
) -> float:
    """Standard error (over target days) of the headline MAE skill against the naive."""
    y, horizon = table["actual"].to_numpy(), table[HORIZON].to_numpy()
    own = np.abs(y - model.quantiles(table["model"].to_numpy(), horizon)[1])
    reference = np.abs(y - naive.quantiles(table[REFERENCE].to_numpy(), horizon)[1])
    scale = float(np.mean(reference))
    return paired_noise(own - reference, table["day"].to_numpy()) / scale if scale else 0.0


def _prediction_tables(
    model: BusynessForecaster, headline: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model and baseline answers for the headline rows, keyed by cell name and UTC hour."""
    cells = model.history_.cells[headline["row"].to_numpy()]
    hours = pd.DatetimeIndex(
        model.history_.start_ns + (headline["origin"] + headline[HORIZON] - 1).to_numpy() * HOUR_NS,
        tz="UTC",
    )
    keys = {H3_CELL: cell_names(cells), HOUR: hours}
    mean = headline["model"].to_numpy()
    predictions = pd.DataFrame({**keys, PREDICTION: mean})
    quantiles = model.quantiles(mean, headline[HORIZON].to_numpy())
    for column, values in zip(INTERVAL_COLUMNS, quantiles, strict=True):
        predictions[column] = values
    predictions[HORIZON] = headline[HORIZON].to_numpy()
    predictions[TARGET] = headline["actual"].to_numpy()
    baseline = pd.DataFrame(
        {**keys, BASELINE: headline[REFERENCE].to_numpy(), TARGET: headline["actual"].to_numpy()}
    )
    return predictions, baseline


def evaluate_leaky_reference_protocol(
    counts: pd.DataFrame, leaky: BusynessFeatures, params: dict[str, Any]
) -> dict[str, Any]:
    """The reference notebook's protocol, for comparison only: leaky by construction.

    Statistics (``leaky``, fitted by feature_engineering on ALL events) and the target come from
    all data; each event row is labelled with the count of its cell-hour; rows are split at
    random; a forest with ``leaky_reference_protocol.forest`` parameters. An event row's features
    and target depend only on its cell and hour, so rows are drawn from ``counts`` (the
    cell-hour counts of all events), each cell-hour once per event: ``max_rows`` events at
    random, or all. Nothing here reads the events themselves, whichever engine counted them.
    """
    protocol = params["leaky_reference_protocol"]
    busyness = counts[TARGET].to_numpy(dtype=np.int64)
    events = np.arange(int(busyness.sum()))
    if protocol.get("max_rows") and len(events) > protocol["max_rows"]:
        rng = np.random.default_rng(params["random_state"])
        events = np.sort(rng.choice(len(events), protocol["max_rows"], replace=False))
    pair = np.searchsorted(np.cumsum(busyness), events, side="right")  # each event's cell-hour
    features = [name for name in REFERENCE_FEATURES if name in leaky.feature_names_]
    columns = leaky.feature_columns(
        counts[CELL].to_numpy(dtype=np.uint64)[pair], utc_hour_ns(counts[HOUR])[pair]
    )
    x = pd.DataFrame({name: columns[name] for name in features})
    y = busyness[pair].astype(float)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=protocol["test_size"], random_state=params["random_state"]
    )
    forest = RandomForestRegressor(
        random_state=params["random_state"], n_jobs=params["n_jobs"], **protocol["forest"]
    ).fit(x_train, y_train)
    return {
        "description": (
            "Reference notebook protocol: per-cell statistics and the row-level target (each event "
            "labelled with its cell-hour count) computed over ALL data, random split. Leaky: not "
            "comparable with the time-split test metrics, shown beside them only."
        ),
        "rows": len(x),
        "test_size": protocol["test_size"],
        "features": features,
        "metrics": regression_metrics(y_test, forest.predict(x_test)),
    }


def gate_decision(test_metrics: dict[str, Any], params: dict[str, Any]) -> tuple[bool, list[str]]:
    """The baseline gate: headline R² >= ``min_r2``; in no product x bucket is the P50's MAE
    worse than the seasonal naive's median beyond ``gate_noise_z`` standard errors (a bucket
    with fewer than ``gate_min_bucket_rows`` rows, or where both give the same P50 on every
    row, is not judged); and better on the headline product (the naive itself has nothing to
    beat). Each bucket's verdict is written into its backtest row."""
    min_r2, z = params["min_r2"], float(params.get("gate_noise_z", 2.0))
    min_rows = int(params.get("gate_min_bucket_rows", 1000))
    reasons = []
    r2 = test_metrics["model"]["r2"]
    if not r2 >= min_r2:
        reasons.append(f"test R2 {r2:.4f} < min_r2 {min_r2}")
    for row in test_metrics["backtest"]:
        model = row["model"]
        judged = row["rows"] >= min_rows and not model["same_p50"]
        worse = judged and model["skill_mae"] < -z * model["skill_noise"]
        model["gate"] = "worse" if worse else ("ok" if judged else "not judged")
        if worse:
            reasons.append(
                f"{row['product']} {row['bucket']}: MAE {model['mae']:.4f} worse than the "
                f"seasonal-naive baseline's {row[REFERENCE]['mae']:.4f} (skill "
                f"{model['skill_mae']:+.3f}, noise {model['skill_noise']:.3f})"
            )
    headline = skill(test_metrics["model"]["mae"], test_metrics["seasonal_naive_baseline"]["mae"])
    is_reference = test_metrics.get("model_method") == REFERENCE
    if not (headline > 0 or (is_reference and headline == 0)):
        reasons.append(
            f"{HEADLINE_PRODUCT}: P50 MAE {test_metrics['model']['mae']:.4f} does not beat the "
            f"seasonal-naive baseline's {test_metrics['seasonal_naive_baseline']['mae']:.4f}"
        )
    return not reasons, reasons


def build_evaluation_report(
    *,
    test_metrics: dict[str, Any],
    selection: dict[str, Any],
    leaky: dict[str, Any],
    windows: dict[str, str],
    feature_engineering_report: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The evaluation report (gate decided, registration pending) and its metrics for MLflow.

    The gate is the baseline gate plus, when a champion serves, beating it on the same rows.
    """
    baseline_passed, reasons = gate_decision(test_metrics, params)
    comparison = test_metrics["champion_comparison"]
    if comparison["status"] == "scored":
        comparison |= verdict(test_metrics["backtest"], params["champion_challenge"])
    reasons += champion_reasons(comparison)
    passed = not reasons
    report = {
        "time_windows": windows,
        "test": test_metrics,
        "leaky_reference_protocol": leaky,
        "model_selection": selection,
        "panels": feature_engineering_report,
        "gate": {
            "passed": passed,
            "min_r2": params["min_r2"],
            "rule": (
                f"test R2 ({HEADLINE_PRODUCT}) >= min_r2; P50 MAE not worse than the"
                " seasonal-naive median's beyond gate_noise_z standard errors (over days) in any"
                f" product x bucket with >= gate_min_bucket_rows rows; better on {HEADLINE_PRODUCT};"
                " and, when a champion serves, a lower average error than the champion's on the"
                " same rows"
            ),
            "buckets": [
                {
                    "product": row["product"],
                    "bucket": row["bucket"],
                    "rows": row["rows"],
                    "skill_mae": row["model"]["skill_mae"],
                    "noise": row["model"]["skill_noise"],
                    "verdict": row["model"]["gate"],
                }
                for row in test_metrics["backtest"]
            ],
            "baseline_gate_passed": baseline_passed,
            "champion_comparison": comparison,
            "reasons": reasons,
        },
    }
    flat = {f"test_{k}": v for k, v in test_metrics["model"].items()}
    flat |= {f"baseline_{k}": v for k, v in test_metrics["seasonal_naive_baseline"].items()}
    flat |= {f"leaky_reference_protocol_{k}": v for k, v in leaky["metrics"].items()}
    for row in test_metrics["backtest"]:
        key = f"{row['product']}_{row['bucket'].replace('-', '_')}"
        for name in ("skill_mae", "skill_rmse", "pit_coverage_80", "r2"):
            flat[f"{key}_{name}"] = row["model"][name]
    flat["gate_passed"] = float(passed)
    if comparison["status"] == "scored":
        flat |= {
            f"champion_{comparison['metric']}": comparison["champion"],
            f"challenger_{comparison['metric']}": comparison["challenger"],
            "challenger_improvement": comparison["improvement"],
        }
    return report, {name: {"value": float(value), "step": 0} for name, value in flat.items()}


def permutation_feature_importance(
    model: BusynessForecaster, windows: dict[str, str], params: dict[str, Any]
) -> pd.DataFrame:
    """Poisson-deviance increase of the ratio regressor when each feature is permuted, on test
    backtest rows (day-ahead origins); empty for a statistical baseline."""
    columns = ["feature", "importance_mean", "importance_std"]
    if model.regressor_ is None:
        return pd.DataFrame(columns=columns)
    history = model.history_
    start = window_position(history, windows, "test_start")
    end = window_position(history, windows, "test_end")
    rng = np.random.default_rng(params["random_state"])
    origins = np.arange(start, end)
    origins = origins[model.derived.calendar["hour"][origins] == 0]
    horizon = np.arange(1, 25)
    origin, h = np.repeat(origins, 24), np.tile(horizon, len(origins))
    keep = origin + h - 1 < end
    rows = rng.integers(0, len(history.cells), size=int(keep.sum()))
    x, base = model.design(rows, origin[keep], h[keep])
    y = model.derived.counts[rows, origin[keep] + h[keep] - 1] / base
    importance = permutation_importance(
        model.regressor_,
        x,
        y,
        sample_weight=base,
        scoring="neg_mean_poisson_deviance",
        n_repeats=params["permutation_repeats"],
        random_state=params["random_state"],
        n_jobs=1,
    )
    table = pd.DataFrame(
        {
            "feature": list(model.feature_names_),
            "importance_mean": importance.importances_mean,
            "importance_std": importance.importances_std,
        }
    )
    return table.sort_values("importance_mean", ascending=False, ignore_index=True)
