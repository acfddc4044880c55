"""Challenger vs champion on the challenger's test window (in memory, no registry)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.candidates import forecaster_for, window_position
from geo_busyness.pipelines.modeling.champion import champion_reasons, history_counts, verdict
from geo_busyness.pipelines.modeling.nodes import backtest_test_window, build_evaluation_report
from tests.pipelines.conftest import NO_CHAMPION


def _champion(model) -> dict[str, Any]:
    return {"model_name": "geo-busyness", "alias": "champion", "version": "1", "model": model}


def _report(test_metrics, modeled, windows, params):
    draft = modeled["evaluation_report_draft"]
    return build_evaluation_report(
        test_metrics=test_metrics,
        selection=draft["model_selection"],
        leaky=draft["leaky_reference_protocol"],
        windows=windows,
        feature_engineering_report=draft["panels"],
        params=params,
    )


@pytest.fixture
def setting(modeled_in_memory, features_in_memory, tiny_parameters):
    """The tiny city's model, candidates, windows and modeling parameters."""
    return (
        modeled_in_memory["evaluated_model"],
        modeled_in_memory["model_selection"],
        features_in_memory["time_windows"],
        copy.deepcopy(tiny_parameters["modeling"]),
    )


def test_a_champion_fitted_before_the_new_weeks_answers_as_if_it_had_seen_them(
    setting, features_in_memory, tiny_parameters
) -> None:
    """The champion, fitted on history that ends before the test window, is given the new
    counts without a refit: the seasonal-naive champion then equals the seasonal-naive baseline
    on every scored row, so both are scored on the same cells x hours with the same data."""
    model, selection, windows, params = setting
    full = features_in_memory["count_history"]
    cut = window_position(full, windows, "test_start") - 30  # ends before the test window
    older = CountHistory(full.cells, full.start_ns, full.counts[:, :cut].copy(), full.timezone)
    champion = forecaster_for("seasonal_naive", older, params)
    champion.fit(older, features_in_memory["busyness_features"])
    metrics, _, _ = backtest_test_window(model, selection, _champion(champion), windows, params)
    assert metrics["champion_comparison"]["status"] == "scored"
    for row in metrics["backtest"]:
        assert row["champion"]["mean_poisson_deviance"] == pytest.approx(
            row["seasonal_naive"]["mean_poisson_deviance"], rel=1e-9
        )
    assert metrics["champion_comparison"]["headline"] == pytest.approx(
        metrics["seasonal_naive_baseline"]
    )


def test_a_tie_keeps_the_champion(setting, modeled_in_memory) -> None:
    """The challenger against itself as champion: equal scores, so it is not registered."""
    model, selection, windows, params = setting
    metrics, _, _ = backtest_test_window(
        model, selection, _champion(copy.copy(model)), windows, params
    )
    report, flat = _report(metrics, modeled_in_memory, windows, params)
    comparison = report["gate"]["champion_comparison"]
    assert comparison["improvement"] == 0.0 and comparison["challenger_wins"] is False
    assert report["gate"]["passed"] is False
    assert any("does not beat the champion (version 1)" in r for r in report["gate"]["reasons"])
    assert flat["challenger_improvement"]["value"] == 0.0


def test_a_better_challenger_passes_and_a_worse_one_fails(setting, modeled_in_memory) -> None:
    """Against a champion that knew a third of the real counts (a seasonal naive whose history
    was undercounted) the model wins on the gate's loss; with a margin it cannot reach the gate
    names the champion."""
    model, selection, windows, params = setting
    known = model.history_
    undercounted = CountHistory(known.cells, known.start_ns, known.counts * 0.3, known.timezone)
    naive = forecaster_for("seasonal_naive", undercounted, params)
    champion = _champion(naive.fit(undercounted, model.cell_features_))
    metrics, _, _ = backtest_test_window(model, selection, champion, windows, params)
    report, _ = _report(metrics, modeled_in_memory, windows, params)
    comparison = report["gate"]["champion_comparison"]
    assert comparison["challenger"] < comparison["champion"], "fixture: model beats the naive"
    assert comparison["challenger_wins"] is True
    assert report["gate"]["passed"] is report["gate"]["baseline_gate_passed"]

    params["champion_challenge"]["min_improvement"] = comparison["improvement"] + 0.01
    metrics, _, _ = backtest_test_window(model, selection, champion, windows, params)
    report, _ = _report(metrics, modeled_in_memory, windows, params)
    assert report["gate"]["passed"] is False
    assert report["gate"]["champion_comparison"]["challenger_wins"] is False


def test_no_champion_leaves_the_baseline_gate_alone(setting, modeled_in_memory) -> None:
    model, selection, windows, params = setting
    metrics, _, _ = backtest_test_window(model, selection, NO_CHAMPION, windows, params)
    report, flat = _report(metrics, modeled_in_memory, windows, params)
    assert report["gate"]["champion_comparison"]["status"] == "none"
    assert report["gate"]["passed"] is report["gate"]["baseline_gate_passed"]
    assert "challenger_improvement" not in flat


def test_a_champion_at_another_resolution_is_not_scored(setting) -> None:
    model, selection, windows, params = setting
    other = copy.copy(model)
    other.cell_features_ = copy.copy(model.cell_features_)
    other.cell_features_.resolution = model.resolution + 1
    metrics, _, _ = backtest_test_window(model, selection, _champion(other), windows, params)
    comparison = metrics["champion_comparison"]
    assert comparison["status"] == "incomparable" and "resolution" in comparison["reason"]
    assert "champion" not in metrics["backtest"][0]


def test_verdict_direction_and_reasons() -> None:
    scores = [{"model": {"mae": 1.0, "r2": 0.7}, "champion": {"mae": 1.1, "r2": 0.6}}]
    lower = verdict(scores, {"metric": "mae", "min_improvement": 0.0})
    higher = verdict(scores, {"metric": "r2", "min_improvement": 0.0})
    assert lower["challenger_wins"] and lower["improvement"] == pytest.approx(0.1 / 1.1)
    assert higher["challenger_wins"] and higher["improvement"] == pytest.approx(0.1 / 0.6)
    lost = verdict(scores, {"metric": "mae", "min_improvement": 0.2})
    reasons = champion_reasons({**lost, "status": "scored", "version": "3"})
    assert len(reasons) == 1 and "version 3" in reasons[0]
    assert champion_reasons({"status": "none"}) == []


def test_history_counts_round_trip(features_in_memory) -> None:
    history = features_in_memory["count_history"]
    counts = history_counts(history)
    assert counts["busyness"].sum() == pytest.approx(float(history.counts.sum()))
    rebuilt = CountHistory(
        history.cells, history.start_ns, np.zeros((len(history.cells), 0), np.float32), "UTC"
    ).extended(counts, history.end_ns)
    np.testing.assert_array_equal(rebuilt.counts, history.counts)
