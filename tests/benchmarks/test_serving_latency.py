"""benchmarks/serving_latency.py at toy size, and the docs table its JSON gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.running import BENCHMARKS, run_benchmark


@pytest.mark.slow
def test_serving_latency_runs_at_toy_size(mlflow_model_dir: Path, tmp_path: Path) -> None:
    """One run on the tests' small model: single-row and 1,000-row p50/p99 and 8-client
    throughput of the server and of the model's predict in process (and of the app without
    HTTP, the HTTP floor), the single-row stages, with the load average of each part."""
    out = tmp_path / "serving.json"
    done = run_benchmark(
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
def test_the_docs_table_is_what_its_result_file_gives() -> None:
    """docs/benchmarks.md's tables are generated from the JSON files they name, not copied."""
    done = run_benchmark(str(BENCHMARKS / "serving_latency.py"), "--check-docs", timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
