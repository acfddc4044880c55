"""The gate's outcome in MLflow: the run tagged either way, a passing model registered.

A registered version carries alias ``challenger``, tags (test metrics, windows, origin,
dispersion, git revision, parameter digest) and its model card; a failed gate registers
nothing and says why in the run's tags and the report.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.geo import cell_centres
from geo_busyness.pipelines.modeling.model_card import (
    git_revision,
    model_card,
    model_card_markdown,
    params_digest,
)
from geo_busyness.quality_gate import champion_kept
from geo_busyness.registry import log_model_card, register_model
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME, H3_CELL, HOUR

logger = logging.getLogger(__name__)

#: The gate tag of a version that failed the gate and was registered by the explicit override
#: (``modeling.register_rejected``): deployment deploys only ``passed``.
REJECTED_OVERRIDE = "failed_registered_by_override"


def gate_and_register(
    model: BusynessForecaster,
    report: dict[str, Any],
    test_predictions: pd.DataFrame,
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
        override = not gate["passed"] and bool(params.get("register_rejected"))
        if not gate["passed"] and not override:
            _log_refusal(gate)
            return report
        if override:
            logger.warning(
                "Quality gate failed (%s); registered anyway because modeling.register_rejected"
                " is true: tagged gate=%s, so deployment refuses it and it never becomes"
                " champion automatically",
                "; ".join(gate["reasons"]),
                REJECTED_OVERRIDE,
            )
            mlflow.set_tag("gate_override", "register_rejected")
        report["registration"] = _register(
            model, report, test_predictions, feature_engineering_params, params
        )
        report["registration"]["override"] = override
        report["registration"]["run_id"] = run.info.run_id
        return report
    finally:
        if started:
            mlflow.end_run()


def _log_refusal(gate: dict[str, Any]) -> None:
    """Nothing registered: an expected outcome (INFO) when only the serving champion was not
    beaten, since it keeps serving; a WARNING when the gate failed on its own rules."""
    kept = champion_kept(gate)
    if kept:
        reason = gate["champion_comparison"].get("reason")
        logger.info(
            "Quality gate: nothing registered, %s%s", kept, f" ({reason})" if reason else ""
        )
    else:
        logger.warning("Quality gate failed, nothing registered: %s", "; ".join(gate["reasons"]))


def _register(
    model: BusynessForecaster,
    report: dict[str, Any],
    test_predictions: pd.DataFrame,
    feature_engineering_params: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Register the model (alias ``challenger``), tag the version, log its model card."""
    name, alias = params["registered_model_name"], params["registry_alias"]
    example = query_example(test_predictions)
    tags = {f"test_{k}": v for k, v in report["test"]["model"].items()}
    tags |= {"origin": model.origin.isoformat(), "negative_binomial_size": model.size_}
    tags |= {f"baseline_{k}": v for k, v in report["test"]["seasonal_naive_baseline"].items()}
    tags |= {f"window_{k}": v for k, v in report["time_windows"].items()}
    tags |= {
        "model_type": report["model_selection"]["chosen"],
        "git_revision": git_revision(),
        "params_sha256": params_digest(
            feature_engineering=feature_engineering_params, modeling=params
        ),
        "gate": "passed" if report["gate"]["passed"] else REJECTED_OVERRIDE,
        "fitted_through": pd.Timestamp(model.fitted_through_ns_, tz="UTC").isoformat(),
    }
    comparison = report["gate"].get("champion_comparison", {})
    if comparison.get("status") == "scored":
        tags |= {
            "champion_compared_version": comparison["version"],
            "champion_improvement": comparison["improvement"],
        }
    # Every tag is given with the version (the digest too), the alias moves last: a crash
    # leaves no half-tagged challenger.
    version = register_model(model, example, name, alias, tags=tags)
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


def query_example(test_predictions: pd.DataFrame) -> pd.DataFrame:
    """Five query rows (naive UTC time: MLflow schemas hold naive datetimes) for the signature."""
    head = test_predictions.head(5).reset_index(drop=True)
    lat, lon = cell_centres(np.asarray([int(c, 16) for c in head[H3_CELL]], dtype=np.uint64))
    return pd.DataFrame(
        {
            EVENT_TIME: pd.DatetimeIndex(head[HOUR]).tz_convert("UTC").tz_localize(None),
            EVENT_LAT: lat,
            EVENT_LON: lon,
        }
    )
