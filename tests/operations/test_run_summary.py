"""The end-of-run summary: what it prints from a report, tolerant of missing keys (the hook
that prints it from the run's catalog: tests/hooks/test_summary.py)."""

from __future__ import annotations

import pytest

from geo_busyness.operations.run_summary import (
    NEXT_COMMANDS,
    inference_summary,
    metric_lines,
    monitoring_summary,
    next_commands,
    retraining_summary,
    run_summary,
)
from tests.test_quality_gate import champion_gate

REPORT = {
    "gate": {
        "passed": True,
        "min_r2": 0.6,
        "rule": "test R2 >= min_r2 and test MAE < seasonal-naive baseline MAE",
        "reasons": [],
    },
    "test": {
        "model": {"r2": 0.91634, "mae": 2.93012, "rmse": 6.9},
        "seasonal_naive_baseline": {"r2": 0.9151, "mae": 3.0199, "rmse": 6.96},
    },
    "registration": {
        "registered": True,
        "model_name": "geo-busyness",
        "version": "3",
        "alias": "challenger",
        "model_uri": "models:/geo-busyness@challenger",
        "run_id": "abc123",
    },
}


def test_summary_holds_verdict_metrics_registration_reports_and_next_commands() -> None:
    text = run_summary(REPORT, reports_at="data/08_reporting/evaluation_report.json")
    assert "Quality gate: PASSED (test R2 >= min_r2" in text
    assert "  model: r2 0.9163, mae 2.93, rmse 6.9" in text
    assert "  seasonal_naive_baseline: r2 0.9151, mae 3.02, rmse 6.96" in text
    assert "Registered: geo-busyness version 3, alias @challenger (MLflow run abc123)" in text
    assert "Reports: data/08_reporting/evaluation_report.json" in text
    for command in ("make viz", "uv run kedro viz run", "uv run kedro mlflow ui", "kedro serve"):
        assert command in text


def test_a_failed_gate_shows_its_reasons_and_that_nothing_was_registered() -> None:
    report = {
        "gate": {"passed": False, "reasons": ["test R2 0.41 < min_r2 0.6"]},
        "registration": {"registered": False, "run_id": "r1"},
    }
    text = run_summary(report)
    assert "Quality gate: FAILED" in text
    assert "  - test R2 0.41 < min_r2 0.6" in text
    assert "Registered: nothing (MLflow run r1)" in text


@pytest.mark.parametrize(
    "report",
    [{}, {"gate": None}, {"gate": {}}, {"test": {}}, {"registration": "odd"}, {"test": [1, 2]}],
    ids=["empty", "gate-null", "gate-empty", "test-empty", "registration-odd", "test-list"],
)
def test_missing_or_odd_keys_still_give_a_summary(report: dict) -> None:
    text = run_summary(report)
    assert "Training run summary" in text
    assert "uv run kedro mlflow ui" in text
    assert "Quality gate: " in text


def test_per_horizon_metrics_are_printed_nested() -> None:
    """The coming report format: metrics per horizon bucket (any depth)."""
    lines = metric_lines(
        {
            "model": {"nowcast": {"mae": 1.5, "r2": 0.8}, "day_ahead": {"mae": 2.25}},
            "coverage": 0.9,
            "empty": {},
        }
    )
    assert lines == [
        "  model:",
        "    nowcast: mae 1.5, r2 0.8",
        "    day_ahead: mae 2.25",
        "  coverage: 0.9",
    ]


def test_inference_and_monitoring_summaries() -> None:
    inference = inference_summary(
        {
            "model": {"model_name": "geo-busyness", "version": "3", "data_windows": {"a": 1}},
            "forecast": {"horizon_hours": 24, "cells": 19},
            "queries": {"rows": 2000, "scored": 1990, "rejected": 10},
        }
    )
    assert "model: model_name geo-busyness, version 3" in inference
    assert "data_windows" not in inference
    assert "queries: rows 2000, scored 1990, rejected 10" in inference
    monitoring = monitoring_summary(
        {"retrain_recommended": True, "reasons": ["PSI hour_of_day 0.2 > 0.05"]}
    )
    assert "Retrain recommended: YES" in monitoring
    assert "  - PSI hour_of_day 0.2 > 0.05" in monitoring
    assert "Retrain recommended" not in monitoring_summary({})
    window = {
        "source": "newest_week_of_clean_events",
        "rows": 2506,
        "start_utc": "2014-12-25T08:54:00+00:00",
        "end_utc": "2015-01-01T07:33:00+00:00",
        "why": "recent_raw_events is absent",
    }
    assert (
        "Judged: the newest week of clean_events, 2014-12-25T08:54:00+00:00 .."
        " 2015-01-01T07:33:00+00:00 (2506 events), since recent_raw_events is absent"
    ) in monitoring_summary({"recent_window": window})
    assert "Judged" not in monitoring_summary({"recent_window": {"source": "recent_raw_events"}})


def test_the_summary_names_the_chosen_model_and_each_buckets_skill_and_noise() -> None:
    report = {
        "gate": {
            "passed": True,
            "buckets": [
                {"product": "nowcast", "bucket": "1-3h", "rows": 9519, "skill_mae": 0.2531,
                 "noise": 0.054, "verdict": "ok"},
                {"product": "day_ahead", "bucket": "1-3h", "rows": 418, "skill_mae": 0.0,
                 "noise": 0.0, "verdict": "not judged"},
            ],
        },
        "model_selection": {
            "chosen": "recent_level",
            "folds": [{}, {}, {}],
            "validation_average": {"seasonal_naive": 1.0, "recent_level": 0.9102},
        },
        "registration": {"registered": True, "model_name": "m", "version": "2", "override": True},
    }  # fmt: skip
    text = run_summary(report)
    assert "    nowcast 1-3h: +25.3% (noise 5.4%, 9519 rows) ok" in text
    assert "    day_ahead 1-3h: +0.0% (noise 0.0%, 418 rows) not judged" in text
    assert "Model: recent_level, chosen on 3 validation fold(s)" in text
    assert "seasonal_naive 1, recent_level 0.9102" in text
    assert "deployment refuses it" in text


def test_a_tie_with_the_champion_says_it_keeps_serving_not_failed() -> None:
    """A second run on the same data scores exactly as the champion it registered."""
    report = {
        "gate": champion_gate(1.7196, 1.7196),
        "registration": {"registered": False, "run_id": "r2"},
    }
    text = run_summary(report)
    assert "FAILED" not in text
    assert (
        "Quality gate: unchanged: the champion (version 1) keeps serving; the challenger scores"
        " the same as the champion (gate_loss 1.7196 vs 1.7196; a tie keeps it)"
    ) in text
    assert "  - scored on the challenger's test window" in text
    assert "deployment" not in text
    assert "serve the champion" in text and "uv run kedro serve" in text


def test_a_failed_gate_suggests_no_deployment_and_what_fits() -> None:
    failed = {
        "gate": {"passed": False, "baseline_gate_passed": False, "reasons": ["too short"]},
        "registration": {"registered": False},
    }
    text = run_summary(failed)
    assert "--pipelines deployment" not in text and "kedro serve" not in text
    assert "docs/new_source.md" in text
    assert "modeling.register_rejected=true" in text
    override = {**failed, "registration": {"registered": True, "override": True, "version": "2"}}
    assert "kedro run --pipelines deployment" not in run_summary(override)
    assert "uv run kedro run --pipelines inference,monitoring" in run_summary(override)
    assert next_commands({"gate": {"passed": True}}) == NEXT_COMMANDS


def test_the_retraining_summary_names_versions_and_never_vnone():
    """The first job after `make run` had no champion before (issue #24: "champion vNone -> v2")."""
    record = {
        "status": "promoted",
        "champion_before": None,
        "champion_after": "1",
        "steps": [{"step": "deployment", "status": "ok", "detail": "v1 deployed to local"}],
    }
    summary = retraining_summary(record)
    assert summary.splitlines() == [
        "Retraining: promoted (champion none -> v1)",
        "  deployment: ok - v1 deployed to local",
    ]
    failed = retraining_summary({"status": "failed", "champion_before": "2", "steps": []})
    assert failed == "Retraining: failed (champion v2 -> none)" and "None" not in failed


def test_the_summary_names_the_ingested_batch_monitoring_judged() -> None:
    window = {
        "source": "newest_ingested_batch",
        "batch": "synthetic_week_03",
        "start_utc": "2026-03-02T06:00:00Z",
        "end_utc": "2026-03-09T06:00:00Z",
        "rows": 14050,
    }
    text = monitoring_summary({"recent_window": window})
    assert "Judged: the newest ingested batch synthetic_week_03" in text and "14050 events" in text
