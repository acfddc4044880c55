"""Forecast candidates on the count history, selection on validation, a rolling-origin test
backtest beside the baselines, and the quality gate (registration: ``registration.py``).

Every candidate is a ``BusynessForecaster`` (the baselines too), fitted on rows whose target
hour lies in the train window and scored on the validation window by the same backtest; the
chosen one is refitted through validation, its intervals keep the dispersion fitted on
validation, and the test window is scored on exactly the same cells x hours for all.
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
from geo_busyness.model import recency
from geo_busyness.model.cell_hours import HOUR_NS, utc_hour_ns
from geo_busyness.model.features import REFERENCE_FEATURES, BusynessFeatures
from geo_busyness.model.forecaster import (
    BASELINES,
    BLEND_COMPONENTS,
    HORIZON_BUCKETS,
    LEARNED,
    BusynessForecaster,
)
from geo_busyness.model.geo import cell_names
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.backtest import backtest_means, paired_noise, score
from geo_busyness.pipelines.modeling.champion import (
    champion_on_history,
    champion_predictor,
    champion_reasons,
    verdict,
)
from geo_busyness.pipelines.modeling.selection import (
    MIN_BASELINE_HOURS,
    REFERENCE,
    average_loss,
    combined_column,
    fit_combination,
    fit_distribution,
    fit_recency,
    fold_starts,
    min_learned_hours,
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


def validation_folds(
    history: CountHistory, windows: dict[str, str], params: dict[str, Any]
) -> dict[str, list[tuple[int, int]]]:
    """The rolling validation's weekly folds (latest first) for baselines and learned models,
    each as long as the validation window, counting back from the test window."""
    test_start = window_position(history, windows, "test_start")
    length = test_start - window_position(history, windows, "validation_start")
    folds = params.get("validation_folds", 3)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise ValueError(f"modeling.validation_folds must be a whole number >= 1, got {folds!r}.")
    return {
        "baseline": fold_starts(test_start, length, folds, MIN_BASELINE_HOURS),
        "learned": fold_starts(test_start, length, folds, min_learned_hours(params)),
    }


def fit_candidates(
    history: CountHistory,
    cell_features: BusynessFeatures,
    windows: dict[str, str],
    params: dict[str, Any],
) -> dict[str, Any]:
    """The baselines, and every learned candidate fitted before each validation fold (the
    random forest's grid searched before the latest fold, its best point reused).

    With too little history for a learned model, the baselines compete alone (one log line);
    with too little for a baseline, a clear error naming the window parameters.
    """
    folds = validation_folds(history, windows, params)
    if not folds["baseline"]:
        train_hours = window_position(history, windows, "validation_start")
        raise ValueError(
            f"Too little history to choose a forecaster: the train window has {train_hours} h "
            f"and a baseline needs {MIN_BASELINE_HOURS} h (a week) before the validation window."
            " Give more data, or lower feature_engineering.validation_days / test_days, or move"
            " feature_engineering.start earlier."
        )
    learned_methods = [m for m in params["candidates"] if m in LEARNED]
    # Every baseline: the gate's reference and the columns of every table (``candidates``
    # says which of them may be chosen).
    baselines = {
        method: forecaster_for(method, history, params).fit(history, cell_features)
        for method in BASELINES
    }
    learned: dict[str, list[BusynessForecaster]] = {m: [] for m in learned_methods}
    if learned_methods and not folds["learned"]:
        logger.warning(
            "History too short for %s: a learned model needs %d h before a validation fold, the"
            " latest fold has %d h; the baselines compete alone.",
            " and ".join(learned_methods),
            min_learned_hours(params),
            folds["baseline"][0][0],
        )
        learned = {}
    for method in learned:
        for start, _ in folds["learned"]:
            model = forecaster_for(method, history, params)
            best = learned[method][0].search_ if learned[method] else None
            if best is not None:  # the grid was searched before the latest fold: reuse its best
                model.set_params(
                    grid=None,
                    regressor_params={**(model.regressor_params or {}), **best.best_params_},
                )
            learned[method].append(model.fit(history, cell_features, start))
            if best is not None:
                model.search_ = best
    use = "learned" if learned else "baseline"
    return {"folds": folds[use], "baselines": baselines, "learned": learned}


def _fold_means(candidates: dict[str, Any]) -> pd.DataFrame:
    """Every candidate's validation means pooled over products and folds (``product`` and
    ``fold`` columns)."""
    tables = []
    for k, (start, end) in enumerate(candidates["folds"]):
        forecasters = dict(candidates["baselines"])
        forecasters |= {name: fits[k] for name, fits in candidates["learned"].items()}
        for product, table in backtest_means(forecasters, start, end).items():
            tables.append(table.assign(product=product, fold=k))
    return pd.concat(tables, ignore_index=True)


def _by_product(pooled: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The pooled rows split back into products (the backtest's tables)."""
    return {product: table for product, table in pooled.groupby("product", sort=False)}


def _tune(candidates: dict[str, Any], rows: pd.DataFrame, seed: int, z: float) -> dict[str, Any]:
    """Recent-level weights and each learned candidate's combination fitted on ``rows``."""
    recent = candidates["baselines"]["recent_level"]
    recent.recency_weights_ = fit_recency(recent, rows, seed, z)
    tuned = rows.assign(recent_level=_recent_column(recent, rows))
    blends = {name: fit_combination(tuned, name, seed, z) for name in candidates["learned"]}
    return {"recency": recent.recency_weights_, "blends": blends}


def _apply(candidates: dict[str, Any], rows: pd.DataFrame, tuning: dict[str, Any]) -> pd.DataFrame:
    """``rows`` with the recent-level and combined learned columns of ``tuning``."""
    recent = candidates["baselines"]["recent_level"]
    recent.recency_weights_ = tuning["recency"]
    rows = rows.assign(recent_level=_recent_column(recent, rows))
    for name, weights in tuning["blends"].items():
        rows[name] = combined_column(rows, name, weights)
    return rows


def select_forecaster(candidates: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Choose the forecaster on the rolling validation by the gate's loss (``selection.py``).

    The recent-level weights and each learned model's combination are tuned on validation
    rows; with two folds or more, every fold is scored with what was tuned on the others
    (cross-fitted), so a tuned candidate's loss is out of sample like the baselines'. The
    lowest average loss wins (a learned one only by ``selection_margin``); the final weights
    are tuned on all folds, then the chosen mean's size and median rule per horizon bucket.
    """
    seed, z = int(params["random_state"]), float(params.get("tuning_noise_z", 1.0))
    pooled = _fold_means(candidates)
    folds = sorted(pooled["fold"].unique())
    if len(folds) > 1:
        scored = pd.concat(
            [
                _apply(
                    candidates,
                    pooled[pooled["fold"] == k],
                    _tune(candidates, pooled[pooled["fold"] != k], seed, z),
                )
                for k in folds
            ],
            ignore_index=True,
        )
    tuning = _tune(candidates, pooled, seed, z)
    pooled = _apply(candidates, pooled, tuning)
    if len(folds) == 1:
        scored = pooled
    eligible = [name for name in params["candidates"] if name in candidates["baselines"]]
    names = [*eligible, *candidates["learned"]]
    poisson = {name: candidates["baselines"][REFERENCE] for name in (*BASELINES, *names)}
    scores = score(_by_product(scored), poisson, reference=REFERENCE)
    average = {name: average_loss(scores, name) for name in names}
    chosen = _choose(average, eligible, float(params.get("selection_margin", 0.005)))
    sizes, rules = fit_distribution(pooled, chosen, seed, z)
    if chosen not in LEARNED:  # a baseline serves as it is scored: its Poisson median
        rules = ["poisson"] * len(rules)
    logger.info(
        "Chose %s on %d validation fold(s) by the gate's loss (1 = seasonal naive%s): %s",
        chosen,
        len(folds),
        ", cross-fitted" if len(folds) > 1 else ", in-sample: one fold",
        ", ".join(f"{n} {v:.4f}" for n, v in average.items()),
    )
    fits = candidates["learned"].get("random_forest")
    return {
        "chosen": chosen,
        "selection_metric": "gate_loss",
        "selection_rule": (
            "0.5 x P50 MAE / seasonal naive's + 0.5 x mean RMSE / seasonal naive's, averaged"
            " over products x horizon buckets of the validation folds (tuned weights"
            " cross-fitted over the folds)"
        ),
        "validation_average": average,
        "validation_fold_loss": _fold_spread(scored, names, poisson),
        "cross_fitted": len(folds) > 1,
        "folds": [_fold_dates(candidates, start, end) for start, end in candidates["folds"]],
        "learned_candidates_fitted": bool(candidates["learned"]),
        "history_needed_hours": {
            "learned": min_learned_hours(params),
            "baseline": MIN_BASELINE_HOURS,
        },
        "negative_binomial_size": sizes,
        "median_rule": rules,
        "recency_weights": tuning["recency"],
        "recency_components": [f"{scope}_{hours}h" for scope, hours in recency.COMPONENTS],
        "blend_weights": tuning["blends"],
        "blend_buckets": [f"{low}-{high}h" for low, high in HORIZON_BUCKETS],
        "blend_components": list(BLEND_COMPONENTS),  # the plain profile takes the rest
        "validation": scores,
        "random_forest_search": _search_summary(fits[0].search_ if fits else None),
    }


def _choose(average: dict[str, float], baselines: list[str], margin: float) -> str:
    """The lowest average loss, where any candidate but the seasonal naive must beat the naive,
    and a learned one also the best baseline, by ``margin`` (relative): a validation gain that
    small is noise, and the simpler forecaster serves."""
    fallback = REFERENCE if REFERENCE in baselines else baselines[0]
    reference = average[fallback]
    eligible = [n for n in baselines if n == fallback or average[n] < reference * (1 - margin)]
    best_baseline = min(eligible, key=lambda name: (average[name], eligible.index(name)))
    learned = [name for name in average if name not in baselines]
    best_learned = min(learned, key=lambda name: average[name], default=None)
    if best_learned is not None and average[best_learned] < average[best_baseline] * (1 - margin):
        return best_learned
    return best_baseline


def _recent_column(recent: BusynessForecaster, table: pd.DataFrame) -> np.ndarray:
    """The recent-level baseline's means of backtest rows (its fitted weights)."""
    return recent.baseline_means(
        table["row"].to_numpy(), table["origin"].to_numpy(), table[HORIZON].to_numpy()
    )[2]


def _fold_spread(
    scored: pd.DataFrame, names: list[str], poisson: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Each candidate's loss per fold: mean, min and max over the folds (the choice's spread)."""
    per_fold = {name: [] for name in names}
    for _, rows in scored.groupby("fold"):
        scores = score(_by_product(rows), poisson, REFERENCE)
        for name in names:
            per_fold[name].append(average_loss(scores, name))
    return {
        name: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}
        for name, v in per_fold.items()
    }


def _fold_dates(candidates: dict[str, Any], start: int, end: int) -> dict[str, str]:
    """A fold's [start, end) as ISO UTC hours."""
    history = next(iter(candidates["baselines"].values())).history_
    return {
        key: pd.Timestamp(history.start_ns + pos * HOUR_NS, tz="UTC").isoformat()
        for key, pos in (("start", start), ("end", end))
    }


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


def configured(model: BusynessForecaster, selection: dict[str, Any]) -> BusynessForecaster:
    """``model`` with what validation chose: recent-level and combination weights, the sizes
    and median rules per horizon bucket (the latter only for the chosen method)."""
    model.recency_weights_ = selection.get("recency_weights")
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
        model.set_params(
            grid=None, regressor_params={**(model.regressor_params or {}), **search["best_params"]}
        )
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
    headline = _skill(test_metrics["model"]["mae"], test_metrics["seasonal_naive_baseline"]["mae"])
    is_reference = test_metrics.get("model_method") == REFERENCE
    if not (headline > 0 or (is_reference and headline == 0)):
        reasons.append(
            f"{HEADLINE_PRODUCT}: P50 MAE {test_metrics['model']['mae']:.4f} does not beat the "
            f"seasonal-naive baseline's {test_metrics['seasonal_naive_baseline']['mae']:.4f}"
        )
    return not reasons, reasons


def _skill(value: float, reference: float) -> float:
    """1 - value / reference (0 when the reference is 0)."""
    return float(1.0 - value / reference) if reference > 0 else 0.0


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
