"""modeling run in memory (SequentialRunner, MemoryDatasets) on a tiny city, up to the gate's
decision: the registration node needs a tracking store and is left to the session tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.pipelines.modeling.nodes import gate_decision
from geo_busyness.schemas import BASELINE, HOUR, INTERVAL_COLUMNS, PREDICTION, TARGET


def test_the_model_is_one_forecaster_answering_every_test_hour_once(
    modeled_in_memory: dict[str, Any], features_in_memory: dict[str, Any]
) -> None:
    model = modeled_in_memory["busyness_model"]
    predictions = modeled_in_memory["test_predictions"]
    test_panel = features_in_memory["test_panel"]
    assert isinstance(model, BusynessForecaster)
    assert model.origin == pd.Timestamp(features_in_memory["time_windows"]["test_end"])
    # Day-ahead rows: every cell in every test hour exactly once, with the actual count.
    assert len(predictions) == len(test_panel)
    assert predictions[TARGET].sum() == test_panel[TARGET].sum()
    assert np.isfinite(predictions[PREDICTION]).all() and (predictions[PREDICTION] >= 0).all()
    p10, p50, p90 = (predictions[c] for c in INTERVAL_COLUMNS)
    assert ((p10 <= p50) & (p50 <= p90)).all()
    baseline = modeled_in_memory["baseline_test_predictions"]
    pd.testing.assert_series_equal(baseline[HOUR], predictions[HOUR])
    assert (baseline[BASELINE] >= 0).all()


def test_the_report_draft_holds_metrics_gate_and_windows(
    modeled_in_memory: dict[str, Any], features_in_memory: dict[str, Any], tiny_parameters
) -> None:
    report = modeled_in_memory["evaluation_report_draft"]
    test = report["test"]
    assert {"r2", "mae", "rmse"} <= set(test["model"]) & set(test["seasonal_naive_baseline"])
    passed, reasons = gate_decision(test, tiny_parameters["modeling"])
    assert report["gate"]["passed"] is passed and report["gate"]["reasons"] == reasons
    assert report["time_windows"] == features_in_memory["time_windows"]
    selection = report["model_selection"]
    assert selection["chosen"] in selection["validation_average"]
    assert set(selection["validation_average"]) == set(tiny_parameters["modeling"]["candidates"])
    products = {(row["product"], row["bucket"]) for row in test["backtest"]}
    assert ("nowcast", "1-3h") in products and ("week_ahead", "25-168h") in products
    metrics = modeled_in_memory["evaluation_metrics"]
    assert metrics["test_mae"] == {"value": test["model"]["mae"], "step": 0}
    assert metrics["gate_passed"]["value"] == float(passed)


def test_feature_importance_covers_every_model_feature(
    modeled_in_memory: dict[str, Any],
) -> None:
    model = modeled_in_memory["busyness_model"]
    importance = modeled_in_memory["feature_importance"]
    if model.regressor_ is None:  # a statistical baseline was chosen: nothing to permute
        assert importance.empty
    else:
        assert set(importance["feature"]) == set(model.feature_names_)
