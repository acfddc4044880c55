"""Forecast candidates on the count history, selection on validation, a rolling-origin test
backtest beside the baselines, and the quality gate (registration: ``registration.py``).

Every candidate is a ``BusynessForecaster`` (the baselines too), fitted on rows whose target
hour lies in the train window and scored on the validation window by the same backtest; the
chosen one is refitted through validation, its intervals keep the dispersion fitted on
validation, and the test window is scored on exactly the same cells x hours for all.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split

from geo_busyness.metrics import regression_metrics
from geo_busyness.model.cell_hours import HOUR_NS, utc_hour_ns
from geo_busyness.model.features import REFERENCE_FEATURES, BusynessFeatures
from geo_busyness.model.forecaster import (
    HORIZON_BUCKETS,
    LEARNED,
    BusynessForecaster,
    bucket_values,
    count_quantiles,
)
from geo_busyness.model.geo import cell_names
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.backtest import backtest_means, score
from geo_busyness.pipelines.modeling.champion import (
    champion_on_history,
    champion_predictor,
    champion_reasons,
    verdict,
)
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

#: The baseline every gate compares with, and the level-adjusted one reported beside it.
REFERENCE = "seasonal_naive"
BASELINES = ("seasonal_naive", "level_adjusted")
#: The product whose rows (every test hour exactly once) give the headline metrics and figures.
HEADLINE_PRODUCT = "day_ahead"


def window_position(history: CountHistory, windows: dict[str, str], key: str) -> int:
    """Column of ``windows[key]`` (an ISO hour) in the count history."""
    return int((pd.Timestamp(windows[key]).value - history.start_ns) // HOUR_NS)


def holiday_dates(history: CountHistory, country: str | None) -> list[str]:
    """Public holidays of ``country`` (ISO 3166 code, ``holidays`` package) over the history."""
    if not country:
        return []
    import holidays  # noqa: PLC0415 - only when a country is configured

    first = pd.Timestamp(history.start_ns, tz="UTC").year
    last = pd.Timestamp(history.end_ns, tz="UTC").year + 1
    return sorted(
        str(day) for day in holidays.country_holidays(country, years=range(first, last + 1))
    )


def forecaster_for(
    method: str, history: CountHistory, params: dict[str, Any]
) -> BusynessForecaster:
    """An unfitted forecaster of ``method`` with the modeling parameters."""
    settings = params["forecaster"]
    learned = params.get(method, {}) if method in LEARNED else {}
    return BusynessForecaster(
        method=method,
        shrink_weeks=settings["shrink_weeks"],
        base_floor=settings["base_floor"],
        exposure=settings.get("exposure", "profile"),
        max_train_rows=learned.get("max_train_rows", settings["max_train_rows"]),
        regressor_params=learned.get("params"),
        grid=learned.get("grid"),
        cv_splits=learned.get("cv_splits", 3),
        holidays=holiday_dates(history, params.get("holidays_country")),
        exclude_features=tuple(settings.get("exclude_features") or ()),
        random_state=params["random_state"],
    )


def fit_candidates(
    history: CountHistory,
    cell_features: BusynessFeatures,
    windows: dict[str, str],
    params: dict[str, Any],
) -> dict[str, BusynessForecaster]:
    """Every candidate fitted on rows whose target hour is in the train window."""
    end = window_position(history, windows, "train_end")
    return {
        method: forecaster_for(method, history, params).fit(history, cell_features, end)
        for method in params["candidates"]
    }


def select_forecaster(
    candidates: dict[str, BusynessForecaster], windows: dict[str, str], params: dict[str, Any]
) -> dict[str, Any]:
    """Score every candidate on the validation backtest (its dispersion fitted there too) and
    choose the lowest ``selection_metric`` averaged over products and horizon buckets."""
    history = next(iter(candidates.values())).history_
    start = window_position(history, windows, "validation_start")
    end = window_position(history, windows, "validation_end")
    means = backtest_means(candidates, start, end)
    blends = {}
    for name in (n for n, f in candidates.items() if f.regressor_ is not None):
        blends[name] = _blend(candidates[name], name, means)
    pooled = pd.concat(means.values(), ignore_index=True)
    sizes = {
        name: forecaster.calibrate_intervals(pooled["actual"].to_numpy(), pooled[name].to_numpy())
        for name, forecaster in candidates.items()
    }
    scores = score(means, sizes, reference=REFERENCE)
    metric = params["selection_metric"]
    sign = -1.0 if metric == "r2" else 1.0
    average = {name: float(np.mean([row[name][metric] for row in scores])) for name in candidates}
    chosen = min(average, key=lambda name: sign * average[name])
    logger.info("Chose %s by validation %s (%s)", chosen, metric, average)
    search = candidates.get("random_forest")
    return {
        "chosen": chosen,
        "selection_metric": metric,
        "validation_average": average,
        "negative_binomial_size": sizes,
        "blend_weights": blends,
        "blend_buckets": [f"{low}-{high}h" for low, high in HORIZON_BUCKETS],
        "blend_components": ["learned", "level_adjusted"],  # the plain profile takes the rest
        "validation": scores,
        "random_forest_search": _search_summary(search.search_ if search else None),
    }


def _blend(
    candidate: BusynessForecaster, name: str, means: dict[str, pd.DataFrame]
) -> list[list[float]]:
    """Fit the candidate's combination with both baselines on the validation rows, and
    rewrite its validation means as the combination's (what it will serve)."""
    pooled = pd.concat(means.values(), ignore_index=True)
    plain, level = _baselines(candidate, pooled)
    weights = candidate.fit_blend(
        pooled[HORIZON].to_numpy(),
        pooled["actual"].to_numpy(),
        pooled[name].to_numpy(),
        plain,
        level,
    )
    for table in means.values():
        weight = bucket_values(table[HORIZON].to_numpy(), weights)
        plain, level = _baselines(candidate, table)
        table[name] = (
            weight[:, 0] * table[name].to_numpy()
            + weight[:, 1] * level
            + (1 - weight.sum(axis=1)) * plain
        )
    return weights


def _baselines(candidate: BusynessForecaster, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Both baselines' means of backtest rows."""
    return candidate.baseline_means(
        table["row"].to_numpy(), table["origin"].to_numpy(), table[HORIZON].to_numpy()
    )


def _search_summary(search: Any) -> dict[str, Any] | None:
    """Best parameters and the mean CV score of each grid point (None without a search)."""
    if search is None:
        return None
    return {
        "best_params": {k: v for k, v in search.best_params_.items()},
        "best_cv_score": float(search.best_score_),
        "candidates": [
            {"params": p, "mean_cv_score": float(v)}
            for p, v in zip(
                search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
            )
        ],
    }


def refit_chosen(
    selection: dict[str, Any],
    history: CountHistory,
    cell_features: BusynessFeatures,
    windows: dict[str, str],
    params: dict[str, Any],
) -> BusynessForecaster:
    """The chosen forecaster refitted through validation, with its validation dispersion.

    Its history runs to the data's end, so served forecasts start after the last known hour.
    """
    chosen = selection["chosen"]
    end = window_position(history, windows, "test_start")
    model = forecaster_for(chosen, history, params)
    search = selection.get("random_forest_search")
    if chosen == "random_forest" and search:  # the grid was searched on train: reuse its best
        model.set_params(
            grid=None, regressor_params={**(model.regressor_params or {}), **search["best_params"]}
        )
    model.fit(history, cell_features, end)
    model.size_ = selection["negative_binomial_size"][chosen]
    model.blend_weights_ = selection["blend_weights"].get(chosen)
    return model


def backtest_test_window(
    model: BusynessForecaster,
    candidates: dict[str, BusynessForecaster],
    champion: dict[str, Any],
    windows: dict[str, str],
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The test backtest of the model beside the baselines and the serving champion (same cells
    x hours), and the day-ahead rows (every test hour once) for the figures: model and baseline
    tables."""
    forecasters = {"model": model, **{name: candidates[name] for name in BASELINES}}
    start = window_position(model.history_, windows, "test_start")
    end = window_position(model.history_, windows, "test_end")
    others, sizes, comparison = _champion_column(model, champion)
    means = backtest_means(forecasters, start, end, others)
    sizes = {"model": model.size_, **{name: None for name in BASELINES}} | sizes
    scores = score(means, sizes, reference=REFERENCE)
    headline = means[HEADLINE_PRODUCT]
    metrics = {
        "backtest": scores,
        "headline_product": HEADLINE_PRODUCT,
        "model": _headline(headline, "model", model.size_),
        "seasonal_naive_baseline": _headline(headline, REFERENCE, None),
        "level_adjusted_baseline": _headline(headline, "level_adjusted", None),
        "rows": len(headline),
        "origin_hours": {name: int(table["origin"].nunique()) for name, table in means.items()},
        "champion_comparison": comparison,
    }
    if others:
        comparison["headline"] = _headline(headline, "champion", sizes["champion"])
    return metrics, *_prediction_tables(model, headline)


def _champion_column(
    model: BusynessForecaster, champion: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, float | None], dict[str, Any]]:
    """The champion's predictor and size for the backtest, and what the comparison is."""
    comparison = {key: champion.get(key) for key in ("model_name", "alias", "version")}
    if champion.get("model") is None:
        return {}, {}, comparison | {"status": "none", "reason": champion.get("reason")}
    extended, reason = champion_on_history(champion["model"], model)
    if extended is None:
        logger.warning("Champion version %s not scored: %s", champion["version"], reason)
        return {}, {}, comparison | {"status": "incomparable", "reason": reason}
    predictor = champion_predictor(extended, model.history_)
    return (
        {"champion": predictor},
        {"champion": extended.size_},
        comparison
        | {
            "status": "scored",
            "reason": reason,
        },
    )


def _headline(table: pd.DataFrame, name: str, size: float | None) -> dict[str, float]:
    """Metrics of one forecaster over the headline rows (mean by R²/RMSE/deviance, P50 by MAE)."""
    y, mean = table["actual"].to_numpy(), table[name].to_numpy()
    metrics = regression_metrics(y, mean)
    metrics["mae"] = float(np.mean(np.abs(y - count_quantiles(mean, size, 0.5))))
    return metrics


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
    for column, q in zip(INTERVAL_COLUMNS, (0.1, 0.5, 0.9), strict=True):
        predictions[column] = count_quantiles(mean, model.size_, q)
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


def gate_decision(test_metrics: dict[str, Any], min_r2: float) -> tuple[bool, list[str]]:
    """Pass when the headline R² >= min_r2 and the P50's MAE beats the seasonal-naive median in
    every product and horizon bucket of the test backtest."""
    reasons = []
    r2 = test_metrics["model"]["r2"]
    if not r2 >= min_r2:
        reasons.append(f"test R2 {r2:.4f} < min_r2 {min_r2}")
    for row in test_metrics["backtest"]:
        skill = row["model"]["skill_mae"]
        if not skill > 0:
            reasons.append(
                f"{row['product']} {row['bucket']}: MAE {row['model']['mae']:.4f} does not beat "
                f"the seasonal-naive baseline's {row[REFERENCE]['mae']:.4f} (skill {skill:+.3f})"
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
    baseline_passed, reasons = gate_decision(test_metrics, params["min_r2"])
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
                f"test R2 ({HEADLINE_PRODUCT}) >= min_r2 and P50 MAE below the seasonal-naive"
                " median's in every product and horizon bucket; and, when a champion serves,"
                " a lower average error than the champion's on the same rows"
            ),
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
