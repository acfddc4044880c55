"""How a refused challenger is reported: a champion that keeps serving is an outcome (INFO), a
gate failed on its own rules a WARNING; and what a learned champion's score means when it was
fitted past the challenger's training data."""

from __future__ import annotations

import logging

import pytest
from sklearn.base import clone

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.pipelines.modeling.champion import champion_on_history
from geo_busyness.pipelines.modeling.registration import _log_refusal
from tests.serving.model_fixture import fit_model

TIE = {
    "passed": False,
    "baseline_gate_passed": True,
    "reasons": ["does not beat the champion (version 1): gate_loss 0.9000 vs 0.9000"],
    "champion_comparison": {
        "status": "scored",
        "version": "1",
        "metric": "gate_loss",
        "challenger": 0.9,
        "champion": 0.9,
        "improvement": 0.0,
        "min_improvement": 0.0,
        "challenger_wins": False,
    },
}
FAILED = {"passed": False, "baseline_gate_passed": False, "reasons": ["test R2 0.41 < min_r2 0.6"]}


def test_a_tie_with_the_champion_is_logged_as_unchanged_at_info(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="geo_busyness"):
        _log_refusal(TIE)
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert "unchanged: the champion (version 1) keeps serving" in record.getMessage()
    assert "failed" not in record.getMessage().lower()


@pytest.mark.parametrize("gate", [FAILED, TIE | {"baseline_gate_passed": False}])
def test_a_failed_gate_is_a_warning_with_its_reasons(caplog, gate) -> None:
    with caplog.at_level(logging.INFO, logger="geo_busyness"):
        _log_refusal(gate)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("Quality gate failed, nothing registered: ")
    assert gate["reasons"][0] in record.getMessage()


# ---------------------------------------------------------------- what a champion's score means
@pytest.fixture(scope="module")
def fitted_before_last_week():
    """The serving tests' small learned model (fitted through its data's end) and the same
    model fitted on all but the last week, as the challenger's evaluated model is."""
    champion = fit_model()
    history = champion.history_
    challenger = clone(champion).fit(history, champion.cell_features_, history.hours - 168)
    return champion, challenger


def test_a_learned_champion_fitted_past_the_challenger_s_training_is_named(
    fitted_before_last_week,
) -> None:
    champion, challenger = fitted_before_last_week
    _, reason = champion_on_history(champion, challenger)
    assert reason.startswith("scored on the challenger's test window; the champion was fitted")
    assert "it has learnt from that window, which favours it" in reason
    assert champion_on_history(challenger, champion)[1] == "scored on the challenger's test window"


def test_a_baseline_champion_learns_nothing_so_nothing_is_added(fitted_before_last_week) -> None:
    champion, challenger = fitted_before_last_week
    baseline = BusynessForecaster(method="seasonal_naive").fit(
        champion.history_, champion.cell_features_
    )
    assert champion_on_history(baseline, challenger)[1] == "scored on the challenger's test window"
