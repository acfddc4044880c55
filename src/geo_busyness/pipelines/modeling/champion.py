"""Challenger against the serving champion, on the challenger's own (latest) test window.

The champion (the registry's ``champion`` alias) is given the challenger's count history with
``with_counts`` (no refit: every feature still comes from hours before its origin) and is
scored by the same backtest, on the same cells x hours, as the challenger and the baselines.
A cell the champion never saw gets its unseen-cell answer, which is what it serves today.
The challenger must beat it by ``min_improvement`` of the ``metric``; a tie keeps the champion.
The first model, with no champion, passes on the baseline gate alone.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import HOUR_NS
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.history import CountHistory
from geo_busyness.pipelines.modeling.selection import average_loss
from geo_busyness.registry import ModelNotFound, load_version, resolve_version
from geo_busyness.schemas import CELL, HOUR, TARGET

logger = logging.getLogger(__name__)

#: Metrics where higher is better (the rest are errors: lower is better).
HIGHER_IS_BETTER = frozenset({"r2"})


def load_champion(params: dict[str, Any]) -> dict[str, Any]:
    """Node: the serving champion (name, version, loaded model), or ``model: None`` if none."""
    name, alias = params["registered_model_name"], params["champion_challenge"]["alias"]
    found: dict[str, Any] = {"model_name": name, "alias": alias, "version": None, "model": None}
    try:
        version = resolve_version(name, aliases=[alias])
    except ModelNotFound:
        logger.info("No %s version has alias %s: the baseline gate alone decides", name, alias)
        return found | {"reason": f"no version of {name} has alias {alias} (first model)"}
    logger.info("Challenging %s version %s (%s)", name, version["version"], alias)
    return found | {"version": version["version"], "model": load_version(version)}


def history_counts(history: CountHistory) -> pd.DataFrame:
    """The history's non-zero counts as ``cell, hour, busyness`` rows."""
    row, col = np.nonzero(history.counts)
    return pd.DataFrame(
        {
            CELL: history.cells[row],
            HOUR: pd.DatetimeIndex(history.start_ns + col.astype(np.int64) * HOUR_NS, tz="UTC"),
            TARGET: history.counts[row, col],
        }
    )


def champion_on_history(
    champion: BusynessForecaster, challenger: BusynessForecaster
) -> tuple[BusynessForecaster | None, str]:
    """The champion extended with the challenger's counts (no refit), or None and why not."""
    if champion.resolution != challenger.resolution:
        return None, (
            f"H3 resolution {champion.resolution} differs from the challenger's"
            f" {challenger.resolution}: no common cells to score"
        )
    if champion.timezone != challenger.timezone:
        return None, f"time zone {champion.timezone} differs from {challenger.timezone}"
    history = challenger.history_
    extended = champion.with_counts(history_counts(history), pd.Timestamp(history.end_ns))
    return extended, "scored on the challenger's test window" + _head_start(champion, challenger)


def _head_start(champion: BusynessForecaster, challenger: BusynessForecaster) -> str:
    """What the score of a learned champion fitted past the challenger's training data (e.g.
    refitted through the end of the same data) means: it has learnt from the window it is
    scored on. Baselines learn nothing: every count they use is before each origin."""
    ends = champion.fitted_through_ns_, challenger.fitted_through_ns_
    if champion.regressor_ is None or None in ends or ends[0] <= ends[1]:
        return ""
    champion_end, challenger_end = (
        pd.Timestamp(end, tz="UTC").strftime("%Y-%m-%d %H:%M UTC") for end in ends
    )
    return (
        f"; the champion was fitted through {champion_end}, past the challenger's training data"
        f" (to {challenger_end}): it has learnt from that window, which favours it (a model"
        " trained again on the same data cannot beat it)"
    )


def champion_predictor(champion: BusynessForecaster, history: CountHistory):
    """``predict_rows`` of the champion in the challenger's row and hour positions."""
    offset = (history.start_ns - champion.history_.start_ns) // HOUR_NS
    own_rows = champion.history_.rows(history.cells)

    def predict(rows: np.ndarray, origin: np.ndarray, horizon: np.ndarray) -> np.ndarray:
        return champion.predict_rows(own_rows[rows], np.asarray(origin) + offset, horizon)

    return predict


def verdict(scores: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Challenger vs champion: the metric averaged over products x buckets, and who wins."""
    metric, margin = params["metric"], float(params["min_improvement"])
    if metric == "gate_loss":  # the selection's and the gate's loss (selection.py)
        challenger, champion = average_loss(scores, "model"), average_loss(scores, "champion")
    else:
        challenger = float(np.mean([row["model"][metric] for row in scores]))
        champion = float(np.mean([row["champion"][metric] for row in scores]))
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
    improvement = sign * (challenger - champion) / abs(champion) if champion else 0.0
    return {
        "metric": metric,
        "challenger": challenger,
        "champion": champion,
        "improvement": float(improvement),
        "min_improvement": margin,
        "challenger_wins": bool(improvement > margin),
    }


def champion_reasons(comparison: dict[str, Any]) -> list[str]:
    """Gate reasons from the comparison: empty unless a scored champion was not beaten."""
    if comparison.get("status") != "scored" or comparison["challenger_wins"]:
        return []
    return [
        f"does not beat the champion (version {comparison['version']}): {comparison['metric']}"
        f" {comparison['challenger']:.4f} vs {comparison['champion']:.4f}, improvement"
        f" {comparison['improvement']:+.2%} <= {comparison['min_improvement']:.2%}"
        " (a tie keeps the champion)"
    ]
