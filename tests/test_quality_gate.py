"""The quality gate's verdict read once for everyone: a challenger refused only because it does
not beat the serving champion leaves the champion serving (a tie keeps it)."""

from __future__ import annotations

import pytest

from geo_busyness.quality_gate import champion_kept


def champion_gate(challenger: float, champion: float) -> dict:
    """A gate that refused a challenger only because it did not beat champion version 1."""
    improvement = (champion - challenger) / champion
    return {
        "passed": False,
        "baseline_gate_passed": True,
        "reasons": [f"does not beat the champion (version 1): gate_loss {challenger:.4f}"],
        "champion_comparison": {
            "status": "scored",
            "reason": "scored on the challenger's test window",
            "version": "1",
            "metric": "gate_loss",
            "challenger": challenger,
            "champion": champion,
            "improvement": improvement,
            "min_improvement": 0.0,
            "challenger_wins": False,
        },
    }


def test_a_challenger_worse_than_the_champion_also_leaves_it_serving() -> None:
    kept = champion_kept(champion_gate(1.8, 1.7))
    assert kept.startswith("unchanged: the champion (version 1) keeps serving;")
    assert "gate_loss 1.8000 vs 1.7000, improvement -5.88% <= 0.00%" in kept


@pytest.mark.parametrize(
    "gate",
    [
        {"passed": True},
        {"passed": False, "baseline_gate_passed": False, "reasons": ["test R2 0.4 < 0.6"]},
        {"passed": False, "baseline_gate_passed": True, "champion_comparison": {"status": "none"}},
        {},
        None,
    ],
    ids=["passed", "baselines-failed", "no-champion", "empty", "none"],
)
def test_other_outcomes_are_not_the_champion_kept(gate) -> None:
    assert champion_kept(gate) is None
