"""Model candidates on the train panel, selection on validation, honest test metrics and the gate.

The model artifact is ``Pipeline([("features", fitted BusynessFeatures), ("regressor", ...)])``:
both steps are fitted before they are composed, so the transformer is never refit on panel rows.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, train_test_split
from sklearn.pipeline import Pipeline

from geo_busyness.metrics import LOWER_IS_BETTER, regression_metrics
from geo_busyness.model.cell_hours import (
    count_cell_hours,
    hour_of_week,
    hour_of_week_mean,
    to_utc_hours,
)
from geo_busyness.model.features import REFERENCE_FEATURES, BusynessFeatures, feature_params
from geo_busyness.model.geo import cell_ids, h3_cells
from geo_busyness.model.predict import predict_cell_hours
from geo_busyness.registry import log_model_card, register_model, tag_version
from geo_busyness.schemas import (
    BASELINE,
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HOUR,
    PREDICTION,
    QUERY_COLUMNS,
    TARGET,
)

from .model_card import git_revision, model_card, model_card_markdown, params_digest

logger = logging.getLogger(__name__)


def _xy(model_input: pd.DataFrame, features: BusynessFeatures) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature columns (in the transformer's order) and target of a model-input table."""
    return model_input[list(features.get_feature_names_out())], model_input[TARGET].to_numpy()


def tune_random_forest(
    model_input_train: pd.DataFrame, features: BusynessFeatures, params: dict[str, Any]
) -> tuple[RandomForestRegressor, dict[str, Any]]:
    """Grid-search a random forest over time-ordered folds of the train panel; refit the best."""
    ordered = model_input_train.sort_values([EVENT_TIME, H3_CELL], kind="stable")
    x, y = _xy(ordered, features)
    forest = params["random_forest"]
    grid = {name: list(values) for name, values in forest["grid"].items()}
    fits = int(np.prod([len(values) for values in grid.values()])) * forest["cv_splits"]
    logger.info("Random forest grid search: %d fits on %d panel rows", fits, len(x))
    search = GridSearchCV(
        RandomForestRegressor(
            random_state=params["random_state"], n_jobs=params["n_jobs"], **forest["fixed"]
        ),
        param_grid=grid,
        cv=TimeSeriesSplit(n_splits=forest["cv_splits"]),
        scoring=_progress_scorer(forest["scoring"], list(grid), fits),
        refit=True,
    ).fit(x, y)
    summary = {
        "best_params": {**forest["fixed"], **search.best_params_},
        "best_cv_score": float(search.best_score_),
        "scoring": forest["scoring"],
        "cv": f"TimeSeriesSplit(n_splits={forest['cv_splits']}) on the time-sorted train panel",
        "candidates": [
            {"params": p, "mean_cv_score": float(s)}
            for p, s in zip(
                search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
            )
        ],
    }
    logger.info(
        "Random forest grid search: best %s (%s %.4f)",
        search.best_params_,
        forest["scoring"],
        search.best_score_,
    )
    # Threaded prediction sums the trees in completion order: single-threaded answers are exact
    # and repeatable (the same query gives the same bits, run after run).
    return search.best_estimator_.set_params(n_jobs=1), summary


def _progress_scorer(scoring: str, grid_names: list[str], fits: int) -> Callable[..., float]:
    """The named scorer, logging a line per scored fold: long searches show progress in logs."""
    scorer, done = get_scorer(scoring), itertools.count(1)

    def score(estimator: Any, x: pd.DataFrame, y: np.ndarray) -> float:
        value = scorer(estimator, x, y)
        chosen = {name: estimator.get_params()[name] for name in grid_names}
        logger.info("Grid search fit %d/%d %s: %s %.4f", next(done), fits, chosen, scoring, value)
        return value

    return score


def fit_gradient_boosting(
    model_input_train: pd.DataFrame, features: BusynessFeatures, params: dict[str, Any]
) -> HistGradientBoostingRegressor:
    """Fit a histogram gradient-boosting regressor with a fixed schedule (no early stopping)."""
    x, y = _xy(model_input_train, features)
    return HistGradientBoostingRegressor(
        early_stopping=False, random_state=params["random_state"], **params["gradient_boosting"]
    ).fit(x, y)


def _sanity_problem(predicted: np.ndarray, y_train_max: float) -> str | None:
    """Why predictions are not sane (non-finite, or far beyond anything seen), else None."""
    if not np.isfinite(predicted).all():
        return f"{int((~np.isfinite(predicted)).sum())} non-finite predictions"
    if predicted.max(initial=0.0) > 10 * max(y_train_max, 1.0):
        return f"max prediction {predicted.max():.3g} > 10 x the train maximum {y_train_max:.3g}"
    return None


def select_regressor(
    *,
    random_forest: RandomForestRegressor,
    gradient_boosting: HistGradientBoostingRegressor,
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    features: BusynessFeatures,
    params: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """The candidate with the best validation score among those whose predictions are sane."""
    x, y = _xy(model_input_validation, features)
    metric = params["selection_metric"]
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    y_train_max = float(model_input_train[TARGET].max())
    candidates = {"random_forest": random_forest, "hist_gradient_boosting": gradient_boosting}
    report: dict[str, Any] = {"selection_metric": metric, "candidates": {}}
    best, best_score = None, np.inf
    for name, regressor in candidates.items():
        predicted = regressor.predict(x)
        problem = _sanity_problem(predicted, y_train_max)
        entry: dict[str, Any] = {"params": _plain(regressor.get_params()), "sane": problem is None}
        if problem:
            entry["problem"] = problem
            logger.warning("Candidate %s left out: %s", name, problem)
        else:
            entry["validation"] = regression_metrics(y, np.clip(predicted, 0.0, None))
            score = sign * entry["validation"][metric]
            if score < best_score:
                best, best_score = name, score
        report["candidates"][name] = entry
    if best is None:
        raise ValueError(f"No model candidate gave sane validation predictions: {report}")
    report["chosen"] = best
    baseline = seasonal_naive_baseline(model_input_train, model_input_validation)
    report["seasonal_naive_baseline_validation"] = regression_metrics(
        baseline[TARGET], baseline[BASELINE]
    )
    logger.info("Chose %s by validation %s", best, metric)
    return candidates[best], report


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator params as JSON-friendly values."""
    return {
        k: v if isinstance(v, int | float | str | bool | type(None)) else str(v)
        for k, v in params.items()
    }


def compose_model(features: BusynessFeatures, regressor: Any) -> Pipeline:
    """The one model artifact: the fitted transformer and the fitted regressor, in sequence."""
    return Pipeline([("features", features), ("regressor", regressor)])


def predict_test_window(model: Pipeline, model_input_test: pd.DataFrame) -> pd.DataFrame:
    """The model's answers for the test panel's cell-hours (``predict_cell_hours``) and actuals."""
    cells = cell_ids(model_input_test[H3_CELL].to_numpy())
    answers = predict_cell_hours(model, cells, model_input_test[EVENT_TIME])
    answers[TARGET] = model_input_test[TARGET].to_numpy()
    return answers


def seasonal_naive_baseline(
    model_input_train: pd.DataFrame, model_input_test: pd.DataFrame
) -> pd.DataFrame:
    """Per test row, the mean train busyness of its cell at the same hour of the week.

    The train panel is dense, so this is the transformer's own profile (``hour_of_week_mean``
    over the train hours); cells or hours of the week the train panel lacks get 0.
    """
    train_cells, rows = np.unique(model_input_train[H3_CELL].to_numpy(), return_inverse=True)
    train_hours = model_input_train[EVENT_TIME]
    profile = hour_of_week_mean(
        rows,
        train_hours,
        model_input_train[TARGET].to_numpy(),
        len(train_cells),
        pd.Series(train_hours.unique()),
    )
    test_cells = model_input_test[H3_CELL].to_numpy()
    codes = pd.Index(train_cells).get_indexer(test_cells)
    known = codes >= 0
    baseline = np.zeros(len(test_cells))
    baseline[known] = profile[codes[known], hour_of_week(model_input_test[EVENT_TIME])[known]]
    return pd.DataFrame(
        {
            H3_CELL: test_cells,
            HOUR: model_input_test[EVENT_TIME].to_numpy(),
            TARGET: model_input_test[TARGET].to_numpy(),
            BASELINE: np.nan_to_num(baseline, nan=0.0),
        }
    )


def evaluate_test_window(test_predictions: pd.DataFrame, baseline: pd.DataFrame) -> dict[str, Any]:
    """Test-window metrics of the chosen model and of the seasonal-naive baseline."""
    return {
        "model": regression_metrics(test_predictions[TARGET], test_predictions[PREDICTION]),
        "seasonal_naive_baseline": regression_metrics(baseline[TARGET], baseline[BASELINE]),
        "rows": len(test_predictions),
    }


def evaluate_leaky_reference_protocol(
    clean_events: pd.DataFrame,
    feature_engineering_params: dict[str, Any],
    rf_search: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """The reference notebook's protocol, for comparison only: leaky by construction.

    Statistics and the target come from ALL events; each event row is labelled with the count
    of its cell-hour; rows are split at random; the forest has the chosen grid-search params.
    """
    protocol = params["leaky_reference_protocol"]
    events = clean_events
    if protocol.get("max_rows") and len(events) > protocol["max_rows"]:
        events = events.sample(protocol["max_rows"], random_state=params["random_state"])
    leaky = BusynessFeatures(
        **{**feature_params(feature_engineering_params), "exclude_features": ()}
    )
    leaky.fit(clean_events)
    x = leaky.transform(events[list(QUERY_COLUMNS)])[list(REFERENCE_FEATURES)]
    counts = count_cell_hours(clean_events, leaky.resolution).set_index([CELL, HOUR])[TARGET]
    keys = pd.MultiIndex.from_arrays(
        [
            h3_cells(events[EVENT_LAT], events[EVENT_LON], leaky.resolution),
            to_utc_hours(events[EVENT_TIME]).to_numpy(),
        ]
    )
    y = counts.reindex(keys).to_numpy(dtype=float)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=protocol["test_size"], random_state=params["random_state"]
    )
    forest = RandomForestRegressor(
        random_state=params["random_state"], n_jobs=params["n_jobs"], **rf_search["best_params"]
    ).fit(x_train, y_train)
    return {
        "description": (
            "Reference notebook protocol: per-cell statistics and the row-level target (each event "
            "labelled with its cell-hour count) computed over ALL data, random split. Leaky: not "
            "comparable with the time-split test metrics, shown beside them only."
        ),
        "rows": len(events),
        "test_size": protocol["test_size"],
        "features": list(REFERENCE_FEATURES),
        "metrics": regression_metrics(y_test, forest.predict(x_test)),
    }


def gate_decision(test_metrics: dict[str, Any], min_r2: float) -> tuple[bool, list[str]]:
    """Pass when R² >= min_r2 and the model's MAE beats the seasonal-naive baseline's."""
    model, baseline = test_metrics["model"], test_metrics["seasonal_naive_baseline"]
    reasons = []
    if not model["r2"] >= min_r2:
        reasons.append(f"test R2 {model['r2']:.4f} < min_r2 {min_r2}")
    if not model["mae"] < baseline["mae"]:
        reasons.append(
            f"test MAE {model['mae']:.4f} does not beat the baseline MAE {baseline['mae']:.4f}"
        )
    return not reasons, reasons


def build_evaluation_report(
    *,
    test_metrics: dict[str, Any],
    selection: dict[str, Any],
    rf_search: dict[str, Any],
    leaky: dict[str, Any],
    windows: dict[str, str],
    feature_engineering_report: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The evaluation report (gate decided, registration pending) and its metrics for MLflow."""
    passed, reasons = gate_decision(test_metrics, params["min_r2"])
    report = {
        "time_windows": windows,
        "test": test_metrics,
        "leaky_reference_protocol": leaky,
        "model_selection": selection,
        "random_forest_search": rf_search,
        "panels": feature_engineering_report,
        "gate": {
            "passed": passed,
            "min_r2": params["min_r2"],
            "rule": "test R2 >= min_r2 and test MAE < seasonal-naive baseline MAE",
            "reasons": reasons,
        },
    }
    flat = {f"test_{k}": v for k, v in test_metrics["model"].items()}
    flat |= {f"baseline_{k}": v for k, v in test_metrics["seasonal_naive_baseline"].items()}
    flat |= {f"leaky_reference_protocol_{k}": v for k, v in leaky["metrics"].items()}
    flat["gate_passed"] = float(passed)
    return report, {name: {"value": float(value), "step": 0} for name, value in flat.items()}


def gate_and_register(
    model: Pipeline,
    report: dict[str, Any],
    model_input_test: pd.DataFrame,
    feature_engineering_params: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Register the model (alias challenger, tagged) if the gate passed; tag the run either way."""
    report = json.loads(json.dumps(report))  # a copy
    gate = report["gate"]
    started = mlflow.active_run() is None
    run = mlflow.start_run() if started else mlflow.active_run()
    try:
        mlflow.set_tags(
            {
                "gate": "passed" if gate["passed"] else "failed",
                "gate_reasons": "; ".join(gate["reasons"]) or "-",
            }
        )
        report["registration"] = {"run_id": run.info.run_id, "registered": False}
        if not gate["passed"]:
            logger.warning(
                "Quality gate failed, nothing registered: %s", "; ".join(gate["reasons"])
            )
            return report
        report["registration"] = _register(
            model, report, model_input_test, feature_engineering_params, params
        )
        report["registration"]["run_id"] = run.info.run_id
        return report
    finally:
        if started:
            mlflow.end_run()


def _register(
    model: Pipeline,
    report: dict[str, Any],
    model_input_test: pd.DataFrame,
    feature_engineering_params: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Register the model (alias ``challenger``), tag the version, log its model card."""
    name, alias = params["registered_model_name"], params["registry_alias"]
    # MLflow schemas hold naive datetimes only; naive query timestamps are read as UTC.
    example = model_input_test[list(QUERY_COLUMNS)].head(5).reset_index(drop=True)
    example[EVENT_TIME] = example[EVENT_TIME].dt.tz_convert("UTC").dt.tz_localize(None)
    version = register_model(model, example, name, alias)
    tags = {f"test_{k}": v for k, v in report["test"]["model"].items()}
    tags |= {f"baseline_{k}": v for k, v in report["test"]["seasonal_naive_baseline"].items()}
    tags |= {f"window_{k}": v for k, v in report["time_windows"].items()}
    tags |= {
        "model_type": report["model_selection"]["chosen"],
        "git_revision": git_revision(),
        "params_sha256": params_digest(
            feature_engineering=feature_engineering_params, modeling=params
        ),
        "gate": "passed",
    }
    tag_version(name, version, tags)
    mlflow.set_tag("registered_model_version", version)
    registration = {
        "registered": True,
        "model_name": name,
        "version": version,
        "alias": alias,
        "model_uri": f"models:/{name}@{alias}",
        "tags": {k: str(v) for k, v in tags.items()},
    }
    card = model_card(report, registration)
    log_model_card(card, model_card_markdown(card))
    logger.info("Registered %s version %s with alias %s (model card logged)", name, version, alias)
    return registration


def permutation_feature_importance(
    model: Pipeline, model_input_test: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """MAE increase when each feature is permuted on the test window, largest first."""
    features = model.named_steps["features"]
    x, y = _xy(model_input_test, features)
    importance = permutation_importance(
        model.named_steps["regressor"],
        x,
        y,
        scoring="neg_mean_absolute_error",
        n_repeats=params["permutation_repeats"],
        random_state=params["random_state"],
        n_jobs=1,
    )
    table = pd.DataFrame(
        {
            "feature": np.asarray(x.columns),
            "importance_mean": importance.importances_mean,
            "importance_std": importance.importances_std,
        }
    )
    return table.sort_values("importance_mean", ascending=False, ignore_index=True)
