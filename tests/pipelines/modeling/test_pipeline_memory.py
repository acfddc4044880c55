"""modeling run in memory (SequentialRunner, MemoryDatasets) on a tiny city, up to the gate's
decision: the registration node needs a tracking store and is left to the session tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from geo_busyness.pipelines.modeling.nodes import gate_decision
from geo_busyness.schemas import PREDICTION, TARGET


def test_the_model_is_one_artifact_answering_every_test_row(
    modeled_in_memory: dict[str, Any], features_in_memory: dict[str, Any]
) -> None:
    model = modeled_in_memory["busyness_model"]
    predictions = modeled_in_memory["test_predictions"]
    assert isinstance(model, Pipeline)
    assert list(model.named_steps) == ["features", "regressor"]
    assert len(predictions) == len(features_in_memory["model_input_test"])
    assert np.isfinite(predictions[PREDICTION]).all() and (predictions[PREDICTION] >= 0).all()
    np.testing.assert_array_equal(
        predictions[TARGET], features_in_memory["model_input_test"][TARGET]
    )


def test_the_report_draft_holds_metrics_gate_and_windows(
    modeled_in_memory: dict[str, Any], features_in_memory: dict[str, Any], tiny_parameters
) -> None:
    report = modeled_in_memory["evaluation_report_draft"]
    test = report["test"]
    assert {"r2", "mae", "rmse"} <= set(test["model"]) & set(test["seasonal_naive_baseline"])
    passed, reasons = gate_decision(test, tiny_parameters["modeling"]["min_r2"])
    assert report["gate"]["passed"] is passed and report["gate"]["reasons"] == reasons
    assert report["time_windows"] == features_in_memory["time_windows"]
    assert report["model_selection"]["chosen"] in report["model_selection"]["candidates"]
    metrics = modeled_in_memory["evaluation_metrics"]
    assert metrics["test_mae"] == {"value": test["model"]["mae"], "step": 0}
    assert metrics["gate_passed"]["value"] == float(passed)


def test_feature_importance_covers_every_model_feature(
    modeled_in_memory: dict[str, Any],
) -> None:
    features = modeled_in_memory["busyness_model"].named_steps["features"]
    importance = modeled_in_memory["feature_importance"]
    assert set(importance["feature"]) == set(features.get_feature_names_out())
