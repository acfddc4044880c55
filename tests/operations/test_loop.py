"""The loop end to end on the synthetic city with the recent week's level up 80%: monitoring
recommends retraining, `kedro retrain` trains on the newest data, the challenger beats the
champion (promoted, deployed) and then a weaker one loses to it (champion kept); every alert
reaches the local webhook server and moto's SNS."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from geo_busyness.operations.job import RetrainingJob
from geo_busyness.testing import received_notifications
from tests.alerting import (
    wire_alerts,
)
from tests.conftest import SMALL_TRAINING, copy_project, inside, run_kedro
from tests.pipelines.monitoring.test_pipeline import write_recent_window

pytestmark = pytest.mark.slow

#: The statistical baselines only: the level-adjusted one is chosen (weaker than the learned).
BASELINES_ONLY = ["seasonal_naive", "level_adjusted"]
#: Learned candidates without the forest's grid search, to keep the run short.
LEARNED = ["seasonal_naive", "level_adjusted", "gradient_boosting"]


def training(candidates: list[str]) -> dict[str, Any]:
    """The small-run parameters with these candidates."""
    params = copy.deepcopy(SMALL_TRAINING)
    params["modeling"]["candidates"] = candidates
    return params


def alert_events(webhook, sqs, queue_url) -> tuple[list[str], list[str]]:
    """The events the webhook received so far, and those SNS delivered since the last call
    (a received SQS message is not received again), in order."""
    hooked = [payload["text"].split()[2].rstrip(":") for payload in webhook.payloads()]
    published = [json.loads(n["Message"])["event"] for n in received_notifications(sqs, queue_url)]
    return hooked, published


def test_level_shift_retrain_promote_then_keep_the_champion(
    processed_project: Path, tmp_path: Path, webhook, moto_endpoint
) -> None:
    project = copy_project(processed_project, tmp_path / "project", with_mlflow=False)
    # Version 1, the champion: the level-adjusted baseline, deployed locally.
    run_kedro(project, ["feature_engineering", "modeling"], training(BASELINES_ONLY))
    run_kedro(project, ["deployment"])
    # The week after the history arrives with 80% more events everywhere (one week of the small
    # city swings too much for a 20% shift to be told from weather: monitoring README).
    write_recent_window(project, {"level_factor": 1.8})

    channels = wire_alerts(project, webhook, moto_endpoint)
    alerts, sqs, queue_url = channels.params, channels.sqs, channels.queue_url

    # 1. Monitoring sees the level change; the learned challenger beats the champion.
    with inside(project):
        promoted = RetrainingJob(
            project, runtime_params=training(LEARNED) | {"alerts": alerts}
        ).run()
    assert promoted["status"] == "promoted", promoted
    assert any("level" in reason for reason in promoted["reasons"]), promoted["reasons"]
    comparison = promoted["gate"]["champion_comparison"]
    assert comparison["status"] == "scored" and comparison["version"] == "1"
    assert comparison["challenger_wins"] and comparison["improvement"] > 0
    assert promoted["champion_before"] == "1" and promoted["champion_after"] == "2"
    assert [s["step"] for s in promoted["steps"]] == [
        "ingestion",
        "monitoring",
        "decision",
        "training",
        "deployment",
    ]
    # Trained on the newest data: its test window ends with the recent week.
    report = json.loads((project / "data/08_reporting/evaluation_report.json").read_text())
    recent = json.loads(
        (project / "data/08_reporting/monitoring/monitoring_report.json").read_text()
    )
    assert report["time_windows"]["test_end"] > recent["reference_window"]["end"]
    assert (project / "data/06_models/deployment/serving/geo-busyness-v2").is_dir()

    hooked, published = alert_events(webhook, sqs, queue_url)
    assert hooked == published == ["retrain_recommended", "challenger_promoted"]

    # 2. A challenger of baselines only, forced: it loses to the learned champion, which stays.
    with inside(project):
        kept = RetrainingJob(
            project, runtime_params=training(BASELINES_ONLY) | {"alerts": alerts}
        ).run(force=True)
    assert kept["status"] == "champion_kept", kept
    assert kept["champion_before"] == kept["champion_after"] == "2"
    assert kept["gate"]["baseline_gate_passed"] is not None
    assert kept["gate"]["champion_comparison"]["challenger_wins"] is False
    assert any("does not beat the champion (version 2)" in r for r in kept["gate"]["reasons"])

    hooked, published = alert_events(webhook, sqs, queue_url)
    assert hooked[2:] == published
    # One alert per event: the champion keeping its place is not also a failed gate.
    assert "challenger_rejected" in published and "gate_failed" not in published
    assert "deployment" not in [s["step"] for s in kept["steps"]]
