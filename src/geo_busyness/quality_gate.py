"""The quality gate's verdict (the evaluation report's ``gate`` block), read the same way by
the run summary, the report headers, the model card and the alerts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def champion_kept(gate: Any) -> str | None:
    """``unchanged: the champion (version N) keeps serving`` and why, when the gate refused the
    challenger only because it did not beat the serving champion (it passed the baselines);
    None for any other outcome. A tie (the same score, e.g. a second run on the same data)
    says so."""
    if not isinstance(gate, Mapping) or gate.get("passed") is not False:
        return None
    comparison = gate.get("champion_comparison")
    if (
        gate.get("baseline_gate_passed") is not True
        or not isinstance(comparison, Mapping)
        or comparison.get("status") != "scored"
        or comparison.get("challenger_wins") is not False
    ):
        return None
    version, metric = comparison.get("version", "?"), comparison.get("metric", "the metric")
    challenger, champion = comparison.get("challenger"), comparison.get("champion")
    figures = (
        f"{metric} {challenger:.4f} vs {champion:.4f}"
        if isinstance(challenger, float | int) and isinstance(champion, float | int)
        else str(metric)
    )
    if _same(challenger, champion):
        why = f"the challenger scores the same as the champion ({figures}; a tie keeps it)"
    else:
        improvement = comparison.get("improvement")
        margin = comparison.get("min_improvement")
        change = (
            f", improvement {improvement:+.2%} <= {margin:.2%}"
            if isinstance(improvement, float | int) and isinstance(margin, float | int)
            else ""
        )
        why = f"the challenger passes the baselines but does not beat it ({figures}{change})"
    return f"unchanged: the champion (version {version}) keeps serving; {why}"


def _same(a: Any, b: Any) -> bool:
    """Equal scores, up to float noise (a model refitted on the same data)."""
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return False
