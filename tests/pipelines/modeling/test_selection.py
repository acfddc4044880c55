"""Selection on the rolling validation: the gate's own loss, combinations that can reach a pure
baseline, short histories, and the refit through the end of the data."""

from __future__ import annotations

import functools
import logging

import h3
import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.distribution import poisson_quantile
from geo_busyness.model.features import BusynessFeatures, cell_feature_params
from geo_busyness.model.forecaster import BASELINES, BusynessForecaster
from geo_busyness.model.history import CountHistory, history_from_counts
from geo_busyness.pipelines.modeling import candidates as candidates_module
from geo_busyness.pipelines.modeling.backtest import backtest_means, score
from geo_busyness.pipelines.modeling.candidates import fit_candidates, select_forecaster
from geo_busyness.pipelines.modeling.nodes import (
    backtest_test_window,
    gate_decision,
    refit_chosen,
    refit_through_end,
)
from geo_busyness.pipelines.modeling.selection import (
    BucketRows,
    average_loss,
    fit_combination,
    fit_pool_weeks,
    fit_recency,
    fold_starts,
    gate_loss,
)
from geo_busyness.progress import Progress
from geo_busyness.schemas import CELL
from tests.point_events import place_events

START = pd.Timestamp("2026-01-05T06:00:00Z")  # local midnight in Regina, a Monday
TZ = "America/Regina"
CENTRES = np.array([[50.45, -104.61], [50.43, -104.56], [50.49, -104.66], [50.41, -104.52]])
PARAMS = {
    "candidates": [*BASELINES, "pooled_level", "gradient_boosting"],
    "validation_folds": 3,
    "random_state": 42,
    "min_r2": 0.6,
    "gate_noise_z": 2.0,
    "gate_min_bucket_rows": 1000,
    "forecaster": {"shrink_weeks": 4.0, "base_floor": 0.05, "max_train_rows": 20_000},
    "gradient_boosting": {"params": {"max_iter": 30, "max_depth": 3, "min_samples_leaf": 50}},
}


def _stationary_events(weeks: int) -> pd.DataFrame:
    """Four busy places, each with its own rough hour-of-week means repeated every week, and
    Poisson counts: nothing to learn beyond each cell's hour-of-week profile, and no smooth
    shape that pooling hours or cells could borrow."""
    rng = np.random.default_rng(11)
    hours = pd.date_range(START, periods=weeks * 168, freq="h")
    frames = []
    for i, (lat, lon) in enumerate(CENTRES):
        week = rng.gamma(2.0, 4.0 * (i + 1), 168)
        frames.append(place_events(hours, rng.poisson(np.tile(week, weeks)), (lat, lon, i), rng))
    return pd.concat(frames, ignore_index=True)


def _panel(weeks: int):
    """History, cell features and windows (validation and test a week each) of ``weeks``."""
    events = _stationary_events(weeks)
    counts = count_cell_hours(events, 7)
    end = START + pd.Timedelta(weeks=weeks)
    history = history_from_counts(counts, np.unique(counts[CELL]), START, end, TZ)
    features = BusynessFeatures(
        **cell_feature_params({"h3_resolution": 7, "n_clusters": 2, "random_state": 42})
    ).fit(events)
    windows = {
        "train_start": START.isoformat(),
        "validation_start": (end - pd.Timedelta(weeks=2)).isoformat(),
        "test_start": (end - pd.Timedelta(weeks=1)).isoformat(),
        "test_end": end.isoformat(),
    }
    return history, features, windows


@pytest.fixture(scope="module")
def stationary():
    """A stationary ten-week panel through candidates, selection and the refit before test."""
    history, features, windows = _panel(10)
    candidates = fit_candidates(history, features, windows, PARAMS)
    selection = select_forecaster(candidates, PARAMS)
    evaluated = refit_chosen(selection, history, features, windows, PARAMS)
    return history, features, windows, candidates, selection, evaluated


def test_the_selection_loss_is_the_gates_metrics_on_the_same_rows():
    """``gate_loss`` of a column equals the loss read off the backtest's own scores (P50 MAE
    and mean RMSE beside the seasonal naive's), so selection and gate judge alike."""
    rng = np.random.default_rng(5)
    naive = rng.uniform(0.2, 6, 20_000)
    table = pd.DataFrame(
        {
            "horizon_hours": rng.integers(4, 25, len(naive)),
            "day": rng.integers(0, 7, len(naive)),
            "actual": rng.poisson(naive * rng.lognormal(0, 0.3, len(naive))),
            "seasonal_naive": naive,
            "model": naive * 1.1,
        }
    )
    poisson = BusynessForecaster(method="seasonal_naive")
    scores = score(
        {"day_ahead": table}, {n: poisson for n in ("model", "seasonal_naive")}, "seasonal_naive"
    )
    y, mean = table["actual"].to_numpy(), table["model"].to_numpy()
    direct = gate_loss(y, poisson_quantile(mean, 0.5), mean, table["seasonal_naive"].to_numpy())
    assert direct == pytest.approx(average_loss(scores, "model"), rel=1e-12)
    assert average_loss(scores, "seasonal_naive") == pytest.approx(1.0)


def test_the_tuning_loss_weighs_each_product_as_the_gate_does():
    """Within a horizon bucket the tuning averages the loss over products, as the backtest's
    average over products x buckets does: a thin product is not drowned by a dense one."""
    rng = np.random.default_rng(6)
    parts = []
    for product, n, factor in (("nowcast", 30_000, 1.0), ("day_ahead", 1_000, 1.6)):
        naive = rng.uniform(0.2, 6, n)
        parts.append(
            pd.DataFrame(
                {
                    "product": product,
                    "horizon_hours": rng.integers(1, 4, n),
                    "day": rng.integers(0, 7, n),
                    "actual": rng.poisson(naive * rng.lognormal(0, 0.3, n)),
                    "seasonal_naive": naive,
                    "model": naive * factor,
                }
            )
        )
    pooled = pd.concat(parts, ignore_index=True)
    poisson = BusynessForecaster(method="seasonal_naive")
    scores = score(
        {p: t for p, t in pooled.groupby("product")},
        {n: poisson for n in ("model", "seasonal_naive")},
        "seasonal_naive",
    )
    rows = BucketRows(pooled, 0, seed=0)
    naive = rows.column(pooled, "seasonal_naive")
    assert rows.loss(rows.column(pooled, "model"), naive) == pytest.approx(
        average_loss(scores, "model"), rel=1e-12
    )
    assert rows.clearly_better(naive, rows.column(pooled, "model"), naive, z=2.0)


def test_the_combination_weights_follow_which_forecast_is_right():
    rng = np.random.default_rng(0)
    horizon = np.tile(np.arange(1, 169), 200)
    truth = rng.uniform(1, 10, len(horizon))
    noise = truth * rng.uniform(0.2, 2.0, len(horizon))
    pooled = pd.DataFrame(
        {
            "horizon_hours": horizon,
            "product": "week_ahead",
            "day": np.repeat(np.arange(200) % 14, 168),
            "actual": rng.poisson(truth),
            # Learned right for 1-3 h, level-adjusted right for 4-24 h, the plain profile beyond.
            "learned": np.where(horizon <= 3, truth, noise),
            "seasonal_naive": np.where(horizon > 24, truth, noise),
            "level_adjusted": np.where((horizon > 3) & (horizon <= 24), truth, noise),
            "recent_level": noise,
        }
    )
    weights = fit_combination(pooled, "learned", seed=0)
    assert weights[0][0] >= 0.75 and weights[1][1] >= 0.75 and sum(weights[2]) <= 0.25


def test_folds_count_back_from_the_test_window_while_the_history_allows():
    assert fold_starts(1000, 168, 3, 504) == [(832, 1000), (664, 832)]
    assert fold_starts(1000, 168, 3, 168) == [(832, 1000), (664, 832), (496, 664)]
    assert fold_starts(400, 168, 3, 504) == []


@pytest.mark.slow  # candidates, selection and a refit on a ten-week panel
def test_a_stationary_panel_chooses_a_baseline_and_the_gate_passes_it(stationary):
    history, _features, windows, candidates, selection, evaluated = stationary
    assert len(candidates["folds"]) == 3 and "gradient_boosting" in candidates["learned"]
    assert selection["chosen"] in BASELINES, selection["validation_average"]
    assert evaluated.method == selection["chosen"] and evaluated.regressor_ is None
    no_champion = {"model_name": "m", "alias": "champion", "version": None, "model": None}
    metrics, _predictions, _baseline = backtest_test_window(
        evaluated, selection, no_champion, windows, PARAMS
    )
    passed, reasons = gate_decision(metrics, PARAMS)
    assert passed, reasons
    assert {"seasonal_naive", "level_adjusted", "recent_level"} <= set(metrics["backtest"][0])
    spread = selection["validation_fold_loss"][selection["chosen"]]
    assert spread["min"] <= spread["mean"] <= spread["max"]


def test_three_weeks_of_history_train_the_baselines_with_a_one_line_note(caplog):
    history, features, windows = _panel(3)
    with caplog.at_level(logging.WARNING):
        candidates = fit_candidates(history, features, windows, PARAMS)
    notes = [r.getMessage() for r in caplog.records if "too short" in r.getMessage()]
    assert len(notes) == 1 and "gradient_boosting" in notes[0] and "504 h" in notes[0]
    assert candidates["learned"] == {} and candidates["folds"] == [(168, 336)]
    selection = select_forecaster(candidates, PARAMS)
    assert selection["chosen"] in BASELINES and not selection["learned_candidates_fitted"]


def test_too_little_history_for_any_baseline_is_a_clear_error():
    history, features, windows = _panel(2)
    with pytest.raises(ValueError, match="validation_days / test_days") as error:
        fit_candidates(history, features, windows, PARAMS)
    assert "train window has 0 h" in str(error.value)


@pytest.mark.slow  # fits gradient boosting on every fold of a six-week panel
def test_refit_through_the_end_moves_what_was_learned_and_nothing_in_the_backtest(
    monkeypatch, caplog
):
    history, features, windows = _panel(6)
    params = PARAMS | {"candidates": ["seasonal_naive", "gradient_boosting"]}
    # Every fit reported (a real run reports at most every 10 s), with an estimate of the rest.
    monkeypatch.setattr(candidates_module, "Progress", functools.partial(Progress, every_s=0))
    with caplog.at_level(logging.INFO, logger="geo_busyness.progress"):
        candidates = fit_candidates(history, features, windows, params)
    lines = [r.getMessage() for r in caplog.records if r.name == "geo_busyness.progress"]
    fits = len(candidates["learned"]["gradient_boosting"])
    assert fits > 1 and lines[0].startswith(f"fit_candidates: 1/{fits} fits, ~")
    assert lines[-1].startswith(f"fit_candidates: {fits}/{fits} fits in ")
    selection = select_forecaster(candidates, params) | {"chosen": "gradient_boosting"}
    selection["blend_weights"]["gradient_boosting"] = [[1.0, 0.0, 0.0]] * 3  # all learned
    evaluated = refit_chosen(selection, history, features, windows, params)
    no_champion = {"model_name": "m", "alias": "champion", "version": None, "model": None}
    before = backtest_test_window(evaluated, selection, no_champion, windows, params)[0]
    final = refit_through_end(evaluated, selection)
    after = backtest_test_window(evaluated, selection, no_champion, windows, params)[0]
    assert before == after  # the evidence is the evaluated model's, untouched by the refit
    assert evaluated.fitted_through_ns_ == pd.Timestamp(windows["test_start"]).value
    assert final.fitted_through_ns_ == history.end_ns and final.origin == evaluated.origin
    assert final.blend_weights_ == evaluated.blend_weights_ and final.size_ == evaluated.size_
    rows = np.arange(len(history.cells))
    origin, horizon = np.full(len(rows), history.hours), np.full(len(rows), 5)
    assert not np.allclose(
        final.predict_rows(rows, origin, horizon), evaluated.predict_rows(rows, origin, horizon)
    )


@pytest.mark.parametrize("folds", [0, "two", 1.5, True])
def test_a_bad_number_of_folds_is_refused_naming_the_parameter(folds):
    history, features, windows = _panel(3)
    with pytest.raises(ValueError, match="modeling.validation_folds must be a whole number"):
        fit_candidates(history, features, windows, PARAMS | {"validation_folds": folds})


def _rows_of(counts: np.ndarray) -> tuple[BusynessForecaster, pd.DataFrame]:
    """A recent-level baseline on a history of ``counts`` and its validation rows (the last two
    weeks, pooled over products) with the seasonal naive's column."""
    cells = np.arange(1, len(counts) + 1, dtype=np.uint64)
    history = CountHistory(cells, START.value, counts.astype(np.float32), TZ)
    recent = BusynessForecaster(method="recent_level")
    recent.history_ = history
    naive = BusynessForecaster(method="seasonal_naive")
    naive.history_ = history
    means = backtest_means({"seasonal_naive": naive}, history.hours - 336, history.hours)
    pooled = pd.concat([t.assign(product=p) for p, t in means.items()], ignore_index=True)
    return recent, pooled


def test_recent_weights_follow_a_lasting_day_level_and_stay_zero_without_one():
    """Day levels that persist (AR(1) 0.9 in logs): the day ahead leans on the last 24 h or 7
    days, at the shipped one standard error. The same rhythm at one level: at two standard
    errors every weight stays 0 (the plain profile); one admits a noise gain now and then by
    design (the choice between candidates is cross-fitted and needs a margin besides)."""
    rng = np.random.default_rng(8)
    weeks, cells = 8, 12
    rhythm = np.tile(rng.gamma(3.0, 2.0, (cells, 168)), weeks)
    shock = np.zeros(weeks * 7)
    for day in range(1, len(shock)):
        shock[day] = 0.9 * shock[day - 1] + rng.normal(0, 0.25)
    level = np.exp(np.repeat(shock, 24))
    recent, pooled = _rows_of(rng.poisson(rhythm * level))
    weights = fit_recency(recent, pooled, seed=0, z=1.0)
    assert sum(weights[1][:3]) >= 0.5, weights  # 4-24 h: the city's recent ratios
    recent, pooled = _rows_of(rng.poisson(rhythm))
    assert fit_recency(recent, pooled, seed=0, z=2.0) == [[0.0, 0.0, 0.0, 0.0]] * 3


def test_the_pooled_levels_recency_departs_from_the_recent_levels_only_on_evidence():
    """Without a level to follow, the pooled level keeps the recent level's weights (its
    simpler choice), not the profile alone: a week that needed them stays covered."""
    rng = np.random.default_rng(9)
    rhythm = np.tile(rng.gamma(3.0, 2.0, (12, 168)), 8)
    recent, pooled = _rows_of(rng.poisson(rhythm))
    simpler = [[0.25, 0.0, 0.5, 0.0], [0.0, 0.25, 0.0, 0.0], [0.0, 0.0, 0.75, 0.25]]
    assert fit_recency(recent, pooled, seed=0, z=2.0, simpler=simpler) == simpler


def _pooling_rows(
    weeks: int, shared: bool, smooth: bool = False
) -> tuple[BusynessForecaster, pd.DataFrame]:
    """A pooled-level candidate on 19 adjacent res-8 cells and its validation rows (last two
    weeks): each cell's level times one shared weekly shape, or each cell its own shape (jumpy
    from hour to hour, or ``smooth``: a daily wave at a phase of its own)."""
    rng = np.random.default_rng(21)
    names = h3.grid_disk(h3.latlng_to_cell(50.45, -104.61, 8), 2)
    cells = np.sort(np.array([h3.str_to_int(c) for c in names], dtype=np.uint64))
    level = rng.gamma(2.0, 0.5, (len(cells), 1))
    shapes = rng.gamma(1.0, 1.0, (1 if shared else len(cells), 168))
    if smooth:
        phase = rng.uniform(0, 24, (len(cells), 1))
        shapes = 1.0 + 0.9 * np.sin(2 * np.pi * (np.arange(168) + phase) / 24)
    counts = rng.poisson(np.tile(level * shapes, weeks)).astype(np.float32)
    history = CountHistory(cells, START.value, counts, TZ)
    pooled = BusynessForecaster(method="pooled_level")
    naive = BusynessForecaster(method="seasonal_naive")
    pooled.history_ = naive.history_ = history
    means = backtest_means({"seasonal_naive": naive}, history.hours - 336, history.hours)
    rows = pd.concat([t.assign(product=p) for p, t in means.items()], ignore_index=True)
    return pooled, rows


def test_the_pooling_weight_borrows_a_shared_shape_and_keeps_each_cells_own():
    """Three weeks of sparse cells sharing one weekly shape: the neighbours' shape helps, a
    prior weight > 0 is chosen. Ten weeks of cells with jumpy shapes of their own: no prior
    (neither the neighbours' nor the adjacent hours')."""
    no_recency = [[0.0] * 4] * 3
    model, rows = _pooling_rows(weeks=3, shared=True)
    assert fit_pool_weeks(model, rows, no_recency, seed=0)[0] > 0
    model, rows = _pooling_rows(weeks=10, shared=False)
    assert fit_pool_weeks(model, rows, no_recency, seed=0) == (0.0, 0.0)


def test_the_adjacent_hours_weight_is_chosen_where_demand_changes_smoothly():
    """Three weeks of cells each with a smooth daily wave of its own: the adjacent hours help."""
    no_recency = [[0.0] * 4] * 3
    model, rows = _pooling_rows(weeks=3, shared=False, smooth=True)
    assert fit_pool_weeks(model, rows, no_recency, seed=0)[1] > 0
