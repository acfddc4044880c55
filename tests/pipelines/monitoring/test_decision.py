"""Checks -> reasons: each reason names the check, the figure and the threshold."""

from __future__ import annotations

from geo_busyness.pipelines.monitoring.decision import (
    assemble_report,
    level_checks,
    performance_checks,
    quality_checks,
)
from geo_busyness.pipelines.monitoring.nodes import compare_data_quality
from geo_busyness.pipelines.monitoring.pipeline import create_pipeline

PARAMS = {"thresholds": {"reject_share_increase_pp": 2.0}}


def quality_report(rows: int, **rejected: int) -> dict:
    return {
        "rows_in": rows,
        "rejected_by_reason": rejected,
        "rejected_fraction": sum(rejected.values()) / rows,
    }


def test_a_reject_reason_rising_past_the_threshold_is_a_reason():
    reference = quality_report(10_000, coordinates_out_of_range=30, missing_value=20)
    recent = quality_report(1_000, coordinates_out_of_range=53, missing_value=2)
    drift = compare_data_quality(reference, recent, PARAMS)
    assert drift["by_reason"]["coordinates_out_of_range"]["increase_pp"] == 5.0
    checks = {check["name"]: check for check in quality_checks(drift)}
    fired = checks["coordinates_out_of_range"]
    assert fired["fired"]
    assert fired["reason"] == (
        "reject share coordinates_out_of_range 5.3% vs 0.3% in reference (+5.0 pp > 2.0 pp)"
    )
    assert not checks["missing_value"]["fired"]
    assert "<= 2.0 pp" in checks["missing_value"]["reason"]


def test_a_reason_seen_only_in_the_recent_batch_is_compared_with_zero():
    drift = compare_data_quality(
        quality_report(10_000), quality_report(100, future_timestamp=3), PARAMS
    )
    shares = drift["by_reason"]["future_timestamp"]
    assert shares["reference_share"] == 0
    assert shares["increase_pp"] == 3.0
    assert shares["drifted"]


def test_performance_checks_state_figures_against_thresholds():
    performance = {
        "recent": {"mae": 6.0, "r2": 0.70},
        "test_window": {"mae": 3.0, "r2": 0.90},
        "mae_increase": 1.0 + 1e-9,
        "mae_increase_threshold": 1.0,
        "r2_drop": 0.20,
        "r2_drop_threshold": 0.15,
    }
    mae, r2 = performance_checks(performance)
    assert mae["fired"] and r2["fired"]
    assert mae["reason"] == (
        "performance: MAE 6.000 on recent cell-hours vs 3.000 in the test window (+100.0% > +100%)"
    )
    assert r2["reason"] == (
        "performance: R² 0.700 on recent cell-hours vs 0.900 in the test window (drop 0.200 > 0.15)"
    )


def level_figures(change: float = 0.02, p_value: float = 0.8, bias: float = -0.05) -> dict:
    """``compare_level``'s output with the figures that matter here (0.15, p < 0.1, ±40%)."""
    return {
        "level": {
            "relative_change": change,
            "p_value": p_value,
            "z": 0.3,
            "actual_total": 1020.0,
            "expected_total": 1000.0,
            "served_forecast_change": 0.01,
            "change_threshold": 0.15,
            "p_value_threshold": 0.1,
            "fired": abs(change) > 0.15 and p_value < 0.1,
        },
        "bias": {
            "bias": bias,
            "mean_predicted": 0.95,
            "mean_actual": 1.0,
            "threshold": 0.4,
            "fired": abs(bias) > 0.4,
        },
    }


def test_level_and_bias_checks_state_figures_against_thresholds():
    level = level_figures(change=0.21, p_value=0.003, bias=-0.45)
    level["level"] |= {"actual_total": 12_100.0, "expected_total": 10_000.0}
    check, bias = level_checks(level)
    assert check["fired"] and bias["fired"]
    assert check["reason"] == (
        "level: recent window has 21% more events than the model expected (12,100 vs 10,000;"
        " p=0.003; |+21%| > 15%, p < 0.1)"
    )
    assert bias["reason"] == (
        "bias: day-ahead forecasts 45% below actuals on recent cell-hours (mean 0.950 vs 1.000;"
        " |-45%| > 40%)"
    )
    quiet, unbiased = level_checks(level_figures(change=-0.3, p_value=0.2))
    assert not quiet["fired"] and not unbiased["fired"]
    assert "30% fewer events" in quiet["reason"] and "p >= 0.1" in quiet["reason"]
    assert "<= 40%" in unbiased["reason"]


def test_level_figures_go_to_the_report_and_the_metrics():
    report, verdict, metrics = assemble_report(
        **{**_report_inputs(), "level": level_figures(change=0.3, p_value=0.01)}
    )
    assert verdict["retrain_recommended"]
    assert verdict["reasons"][0].startswith("level: recent window has 30% more events")
    assert report["level"]["relative_change"] == 0.3 and report["bias"]["bias"] == -0.05
    assert metrics["level.level_change"] == {"value": 0.3, "step": 0}
    assert metrics["bias.prediction_bias"]["value"] == -0.05
    assert metrics["level.p_value"]["value"] == 0.01


def _within(psi: float = 0.01) -> dict:
    return {"psi": psi, "psi_threshold": 0.1, "drifted": False}


def _report_inputs() -> dict:
    """The smallest inputs ``assemble_report`` takes: no check fires."""
    performance = {
        "recent": {"mae": 1.0, "r2": 0.7},
        "test_window": {"mae": 1.0, "r2": 0.7},
        "mae_increase": 0.0,
        "mae_increase_threshold": 1.0,
        "r2_drop": 0.0,
        "r2_drop_threshold": 0.15,
        "rows": 10,
    }
    return {
        "model_version": {
            "model_name": "geo-busyness",
            "version": "3",
            "chosen_by": "alias champion",
            "run_id": "r",
            "tags": {"window_train_start": "a", "window_train_end": "b"},
        },
        "event_drift": {
            "unseen_cells": {
                "recent_event_share": 0.0,
                "threshold": 0.05,
                "drifted": False,
                "recent_unseen_events": 0,
            }
        },
        "cell_hour_drift": {"busyness": _within(), "predictions": _within()},
        "performance": performance,
        "level": level_figures(),
        "data_quality": {"by_reason": {}},
        "params": {"thresholds": {}},
    }


def test_the_report_records_the_model_parameter_mismatch():
    message = "Model geo-busyness version 3 was fitted with resolution=7, but ... is 8"
    mismatch = [{"parameter": "feature_engineering.h3_resolution", "message": message}]
    report, _, _ = assemble_report(**_report_inputs(), parameter_mismatch=mismatch)
    assert report["model_parameter_mismatch"] == mismatch
    agreeing, _, _ = assemble_report(**_report_inputs())
    assert agreeing["model_parameter_mismatch"] == []


def test_monitoring_checks_the_model_against_the_run_and_reports_it():
    pipeline = create_pipeline()
    (check,) = pipeline.only_nodes("check_monitored_model_parameters").nodes
    assert check.inputs[2:] == [
        "params:feature_engineering.h3_resolution",
        "params:data_processing.source_timezone",
    ]
    (report,) = pipeline.only_nodes("assemble_monitoring_report").nodes
    assert check.outputs[0] in report.inputs
