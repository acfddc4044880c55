"""Every benchmark script that has a toy size runs in the suite, so none can break unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geo_busyness.testing import PROJECT_ROOT

BENCHMARKS = PROJECT_ROOT / "benchmarks"


@pytest.mark.slow
def test_the_forecast_battery_runs_at_toy_size(tmp_path: Path) -> None:
    """A small synthetic city through the real pipelines: one row per product x bucket with
    the model beside the three baselines, the chosen candidate and the gate, in JSON."""
    out = tmp_path / "battery.json"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "forecast_battery.py"), "--toy", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [run["name"] for run in result["runs"]] == ["toy"] and not result["skipped"]
    products = {(row["product"], row["bucket"]) for row in result["rows"]}
    assert {("nowcast", "1-3h"), ("day_ahead", "4-24h"), ("week_ahead", "25-168h")} <= products
    for row in result["rows"]:
        for name in ("model", "seasonal_naive", "level_adjusted", "recent_level"):
            assert row[f"{name}_mae"] >= 0
        assert 0 <= row["coverage_80"] <= 1 and row["gate"] in ("passed", "FAILED")
    headline = result["runs"][0]["headline"]
    assert set(headline) == {"model_r2", "model_mae", "naive_r2", "naive_mae"}
    assert "battery wall" in done.stdout


def _run_benchmark(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """A benchmark script run as a user runs it; its output for the assertion message."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_serving_latency_runs_at_toy_size(mlflow_model_dir: Path, tmp_path: Path) -> None:
    """One run on the tests' small model: single-row and 1,000-row p50/p99 and 8-client
    throughput of the server and of the model's predict in process (and of the app without
    HTTP, the HTTP floor), the single-row stages, with the load average of each part."""
    out = tmp_path / "serving.json"
    done = _run_benchmark(
        str(BENCHMARKS / "serving_latency.py"),
        *("--model", str(mlflow_model_dir), "--single", "60", "--batch", "3"),
        *("--duration", "1", "--json", str(out)),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for part in ("server", "model_predict", "app", "http_floor"):
        result = figures[part]
        single, rate = result["single_row"], result["concurrent_single_row"]
        assert single["n"] == 60 and 0 < single["p50_ms"] <= single["p99_ms"], part
        assert rate["clients"] == 8 and rate["requests_per_s"] > 0, part
        assert len(result["load_before"]) == len(result["load_after"]) == 3
        assert ("batch_1000_rows" in result) == (part != "http_floor")
    assert figures["server"]["batch_1000_rows"]["n"] == 3
    stages = figures["stages"]
    assert all(stages[f"{name}_us"] > 0 for name in ("parse", "h3", "encode", "app_quick"))
    assert "server (HTTP)" in done.stdout and "model predict_busyness" in done.stdout


@pytest.mark.slow
def test_pipeline_stages_runs_at_toy_size(tmp_path: Path) -> None:
    """Generation writes where processing reads: each stage runs as its own `kedro run` and
    is timed, with its peak memory and the load average."""
    out = tmp_path / "stages.json"
    done = _run_benchmark(
        str(BENCHMARKS / "pipeline_stages.py"),
        *("--events", "20000", "--no-together", "--modeling-at", "0", "--json", str(out)),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["stage"] for row in rows] == ["data_processing", "feature_engineering"]
    for row in rows:
        assert row["events"] == 20_000
        assert row["wall_s"] > row["node_s"] > 0 and row["peak_rss_mb"] > 0
        assert row["load_1min"] >= 0


@pytest.mark.slow
@pytest.mark.parametrize("script", ["serving_latency.py", "pipeline_stages.py"])
def test_the_docs_tables_are_what_their_result_files_give(script: str) -> None:
    """docs/benchmarks.md's tables are generated from the JSON files they name, not copied."""
    done = _run_benchmark(str(BENCHMARKS / script), "--check-docs", timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
