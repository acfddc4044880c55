"""The model card of a registered version and its provenance (git revision, parameter digest).

Pure functions: ``registry.log_model_card`` writes the card to MLflow.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any


def git_revision() -> str:
    """The current commit (``git rev-parse HEAD``), or "unknown" outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def params_digest(**sections: dict[str, Any]) -> str:
    """sha256 of named parameter sections (canonical JSON), to tell runs with the same settings."""
    text = json.dumps(sections, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def model_card(report: dict[str, Any], registration: dict[str, Any]) -> dict[str, Any]:
    """The model card of a registered version, from its evaluation report."""
    test = report["test"]
    return {
        "model": {
            "name": registration["model_name"],
            "version": registration["version"],
            "alias_at_registration": registration["alias"],
            "type": report["model_selection"]["chosen"],
            "git_revision": registration["tags"].get("git_revision", "unknown"),
            "params_sha256": registration["tags"].get("params_sha256", "unknown"),
        },
        "intended_use": (
            "Forecast the number of events (e.g. order pick-ups) per H3 cell per hour for hours"
            " after the training data, to place couriers and set incentives. The answer for a"
            " query (timestamp, lat, lon) is the busyness of its cell in its hour."
        ),
        "data_windows": report["time_windows"],
        "data_used": data_used(report, registration),
        "metrics_test_window": {
            "model": test["model"],
            "seasonal_naive_baseline": test["seasonal_naive_baseline"],
            "rows": test["rows"],
        },
        "leaky_reference_protocol_r2": report["leaky_reference_protocol"]["metrics"]["r2"],
        "gate": report["gate"],
        "champion_comparison": report["gate"].get("champion_comparison", {"status": "none"}),
        "limits": [
            "Cells never seen in the training window get the unseen-cell encoding: their"
            " forecasts rest on location features alone.",
            "Trained on one city's history; a new district, new restaurants or a change in"
            " demand pattern needs retraining (the monitoring pipeline says when).",
            "Counts, not capacity: busyness is events per cell-hour, not couriers needed.",
            "Where the learned models add nothing on validation a baseline is the model; on"
            " steady data the margin over the seasonal naive is small: compare both (the"
            " backtest's table) before acting on a forecast.",
        ],
    }


def data_used(report: dict[str, Any], registration: dict[str, Any]) -> dict[str, str]:
    """Which data each step used: the choice, the evidence and what is served."""
    selection, windows = report["model_selection"], report["time_windows"]
    folds = selection.get("folds") or []
    span = f"{folds[-1]['start']} .. {folds[0]['end']}" if folds else "the validation window"
    return {
        "choice": (
            f"{len(folds)} rolling validation fold(s) {span}, each candidate fitted on the"
            " history before its fold"
        ),
        "evidence": (
            f"fitted on the history before {windows['test_start']}, backtested on"
            f" {windows['test_start']} .. {windows['test_end']}"
        ),
        "served": (
            "refitted through "
            f"{registration['tags'].get('fitted_through', windows['test_end'])} (the end of the"
            " data) with the same choices; forecasts start at its origin"
        ),
    }


def model_card_markdown(card: dict[str, Any]) -> str:
    """The card as markdown (MLflow shows it as the model version's description)."""
    model, test = card["model"], card["metrics_test_window"]
    rows = "\n".join(
        f"| {metric} | {test['model'][metric]:.4f} | {test['seasonal_naive_baseline'][metric]:.4f} |"
        for metric in test["model"]
    )
    windows = "\n".join(f"- {key}: {value}" for key, value in card["data_windows"].items())
    used = "\n".join(f"- {key}: {value}" for key, value in card.get("data_used", {}).items())
    gate = card["gate"]
    limits = "\n".join(f"- {limit}" for limit in card["limits"])
    champion = champion_markdown(card["champion_comparison"])
    return (
        f"# {model['name']} version {model['version']}\n\n"
        f"{model['type']}; git {model['git_revision']}; params sha256 {model['params_sha256']}\n\n"
        f"## Intended use\n{card['intended_use']}\n\n"
        f"## Data windows (UTC)\n{windows}\n\n"
        f"## Data each step used\n{used}\n\n"
        f"## Test-window metrics ({test['rows']} cell-hours)\n"
        f"| metric | model | seasonal-naive baseline |\n| --- | --- | --- |\n{rows}\n\n"
        f"Leaky reference protocol R² (not comparable, shown for context): "
        f"{card['leaky_reference_protocol_r2']:.4f}\n\n"
        f"## Gate\n{'passed' if gate['passed'] else 'failed'}: {gate['rule']}"
        f" (min_r2 {gate['min_r2']})\n\n"
        f"## Against the serving champion\n{champion}\n\n"
        f"## Limits\n{limits}\n"
    )


def champion_markdown(comparison: dict[str, Any]) -> str:
    """One line on the challenger against the champion it had to beat."""
    if comparison.get("status") != "scored":
        return f"Not compared: {comparison.get('reason') or 'no champion'}."
    return (
        f"Version {comparison['version']} on the same test rows: {comparison['metric']}"
        f" {comparison['challenger']:.4f} (this model) vs {comparison['champion']:.4f}"
        f" (champion), improvement {comparison['improvement']:+.2%}"
        f" (needed > {comparison['min_improvement']:.2%})."
    )
