"""Candidates and the choice: every forecaster fitted before each rolling validation fold,
scored by the gate's loss, tuned and chosen (the mechanics: ``selection.py``)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.errors import InsufficientHistoryError
from geo_busyness.model import recency
from geo_busyness.model.cell_hours import HOUR_NS
from geo_busyness.model.features import BusynessFeatures
from geo_busyness.model.forecaster import (
    BASELINES,
    BLEND_COMPONENTS,
    HORIZON_BUCKETS,
    LEARNED,
    POOLED,
    BusynessForecaster,
)
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.backtest import backtest_means, score
from geo_busyness.pipelines.modeling.selection import (
    MIN_BASELINE_HOURS,
    REFERENCE,
    average_loss,
    bucket_rows,
    combined_column,
    fit_combination,
    fit_distribution,
    fit_pool_weeks,
    fit_recency,
    fold_starts,
    min_learned_hours,
)
from geo_busyness.progress import Progress
from geo_busyness.schemas import HORIZON

logger = logging.getLogger(__name__)


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


def with_best_params(model: BusynessForecaster, best: dict[str, Any]) -> BusynessForecaster:
    """``model`` set to fit a grid search's best point without searching again."""
    return model.set_params(grid=None, regressor_params={**(model.regressor_params or {}), **best})


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
        raise InsufficientHistoryError(
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
    # Minutes on a real table: a line with an estimate every few seconds of them.
    fits = Progress("fit_candidates", len(learned) * len(folds["learned"]), "fits")
    for method in learned:
        for start, _ in folds["learned"]:
            model = forecaster_for(method, history, params)
            best = learned[method][0].search_ if learned[method] else None
            if best is not None:  # the grid was searched before the latest fold: reuse its best
                with_best_params(model, best.best_params_)
            learned[method].append(model.fit(history, cell_features, start))
            if best is not None:
                model.search_ = best
            fits.advance()
    fits.finish()
    # The pooled level needs no fit either: it is tuned on the folds like the recent level.
    pooled = {}
    if POOLED in params["candidates"]:
        pooled[POOLED] = forecaster_for(POOLED, history, params).fit(history, cell_features)
    use = "learned" if learned else "baseline"
    return {"folds": folds[use], "baselines": baselines, "pooled": pooled, "learned": learned}


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
    """Recent-level weights, the pooled level's prior weights and recency weights, and each
    learned candidate's combination, fitted on ``rows``."""
    recent = candidates["baselines"]["recent_level"]
    buckets = bucket_rows(rows, seed)  # the same sampled rows for every fit below
    recent.recency_weights_ = fit_recency(recent, rows, seed, z, buckets=buckets)
    tuning: dict[str, Any] = {"recency": recent.recency_weights_, "pooled": None}
    for model in candidates.get("pooled", {}).values():
        pool = fit_pool_weeks(model, rows, recent.recency_weights_, seed, buckets)
        tuning["pooled"] = {
            "weeks": pool[0],
            "adjacent_weeks": pool[1],
            # Departing from the recent level's own weights needs evidence, as their departure
            # from none did: a week the profile alone would have missed stays covered.
            "recency": fit_recency(
                model, rows, seed, z, pool=pool, simpler=recent.recency_weights_, buckets=buckets
            ),
        }
    tuned = rows.assign(recent_level=_recent_column(recent, rows))
    tuning["blends"] = {
        name: fit_combination(tuned, name, seed, z, buckets) for name in candidates["learned"]
    }
    return tuning


def _apply(candidates: dict[str, Any], rows: pd.DataFrame, tuning: dict[str, Any]) -> pd.DataFrame:
    """``rows`` with the recent-level, pooled-level and combined learned columns of ``tuning``."""
    recent = candidates["baselines"]["recent_level"]
    recent.recency_weights_ = tuning["recency"]
    rows = rows.assign(recent_level=_recent_column(recent, rows))
    for name, model in candidates.get("pooled", {}).items():
        model.pool_weeks_ = tuning["pooled"]["weeks"]
        model.pool_adjacent_weeks_ = tuning["pooled"]["adjacent_weeks"]
        model.recency_weights_ = tuning["pooled"]["recency"]
        rows[name] = model.predict_rows(*_positions(rows))
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
    raw = _fold_means(candidates)
    folds = sorted(raw["fold"].unique())
    tuning = _tune(candidates, raw, seed, z)
    pooled = _apply(candidates, raw, tuning)
    scored = pooled
    if len(folds) > 1:  # each fold scored with what was tuned on the others
        scored = pd.concat(
            [
                _apply(
                    candidates,
                    raw[raw["fold"] == k],
                    _tune(candidates, raw[raw["fold"] != k], seed, z),
                )
                for k in folds
            ],
            ignore_index=True,
        )
    eligible = [name for name in params["candidates"] if name in candidates["baselines"]]
    names = [*eligible, *candidates.get("pooled", {}), *candidates["learned"]]
    poisson = {name: candidates["baselines"][REFERENCE] for name in (*BASELINES, *names)}
    by_fold: dict[Any, list[dict[str, Any]]] = {}
    scores = score(_by_product(scored), poisson, reference=REFERENCE, by_fold=by_fold)
    average = {name: average_loss(scores, name) for name in names}
    per_fold = _fold_losses(by_fold, names)
    chosen = _choose(average, eligible, float(params.get("selection_margin", 0.005)), per_fold)
    sizes, rules = fit_distribution(pooled, chosen, seed, z)
    if chosen not in LEARNED:  # a statistical mean serves as it is scored: its Poisson median
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
        "validation_fold_loss": _fold_spread(per_fold),
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
        "pool_weeks": tuning["pooled"] and tuning["pooled"]["weeks"],
        "pool_adjacent_weeks": tuning["pooled"] and tuning["pooled"]["adjacent_weeks"],
        "pooled_recency_weights": tuning["pooled"] and tuning["pooled"]["recency"],
        "recency_components": [f"{scope}_{hours}h" for scope, hours in recency.COMPONENTS],
        "blend_weights": tuning["blends"],
        "blend_buckets": [f"{low}-{high}h" for low, high in HORIZON_BUCKETS],
        "blend_components": list(BLEND_COMPONENTS),  # the plain profile takes the rest
        "validation": scores,
        "random_forest_search": _search_summary(fits[0].search_ if fits else None),
    }


def _choose(
    average: dict[str, float],
    baselines: list[str],
    margin: float,
    per_fold: dict[str, list[float]] | None = None,
) -> str:
    """The lowest average loss, stepping up in complexity: any baseline but the seasonal naive
    must beat the naive, the pooled level the best baseline, and a learned model whatever
    serves below it, each by ``margin`` (relative): a validation gain that small is noise, and
    the simpler forecaster serves (it also carries a level validation never saw: a learned
    model's trees cannot extrapolate past the ratios they were fitted on). A learned model must
    also lose no validation fold (``per_fold``: each candidate's loss per fold) to what it
    replaces: an average won on some weeks and lost on others is a bet on which weeks come."""
    fallback = REFERENCE if REFERENCE in baselines else baselines[0]
    reference = average[fallback]
    eligible = [n for n in baselines if n == fallback or average[n] < reference * (1 - margin)]
    chosen = min(eligible, key=lambda name: (average[name], eligible.index(name)))
    statistical = [name for name in average if name not in baselines and name not in LEARNED]
    learned = [name for name in average if name in LEARNED]
    for tier in (statistical, learned):
        best = min(tier, key=lambda name: average[name], default=None)
        if best is None or average[best] >= average[chosen] * (1 - margin):
            continue
        if tier is learned and per_fold and not _wins_every_fold(per_fold, best, chosen):
            continue
        chosen = best
    return chosen


def _wins_every_fold(per_fold: dict[str, list[float]], name: str, below: str) -> bool:
    """Whether ``name``'s loss is at most ``below``'s in every validation fold."""
    return all(a <= b for a, b in zip(per_fold[name], per_fold[below], strict=True))


def _positions(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, origin, horizon) of backtest rows."""
    return table["row"].to_numpy(), table["origin"].to_numpy(), table[HORIZON].to_numpy()


def _recent_column(recent: BusynessForecaster, table: pd.DataFrame) -> np.ndarray:
    """The recent-level baseline's means of backtest rows (its fitted weights)."""
    return recent.baseline_means(*_positions(table))[2]


def _fold_losses(
    by_fold: dict[Any, list[dict[str, Any]]], names: list[str]
) -> dict[str, list[float]]:
    """Each candidate's loss per validation fold (``score``'s ``by_fold``), in the order of
    the selection's ``folds`` (latest first)."""
    return {name: [average_loss(by_fold[k], name) for k in sorted(by_fold)] for name in names}


def _fold_spread(per_fold: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Each candidate's loss per fold (latest first) with its mean, min and max: the choice's
    spread."""
    return {
        name: {
            "mean": float(np.mean(v)),
            "min": float(np.min(v)),
            "max": float(np.max(v)),
            "folds": [float(x) for x in v],
        }
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
