"""benchmarks/pipeline_stages.py at toy size, and the docs table its JSON gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.running import BENCHMARKS, run_benchmark


@pytest.mark.slow
def test_pipeline_stages_runs_at_toy_size(tmp_path: Path) -> None:
    """Generation writes where processing reads: each stage runs as its own `kedro run` and
    is timed, with its peak memory and the load average; each step of processing + features
    is timed beside its floor, in the printed block and the JSON."""
    out = tmp_path / "stages.json"
    done = run_benchmark(
        str(BENCHMARKS / "pipeline_stages.py"),
        *("--events", "5000", "--no-together", "--modeling-at", "0", "--json", str(out)),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    rows = figures["rows"]
    assert [row["stage"] for row in rows] == ["data_processing", "feature_engineering"]
    for row in rows:
        assert row["events"] == 5_000
        assert row["wall_s"] > row["node_s"] > 0 and row["peak_rss_mb"] > 0
        assert row["load_1min"] >= 0
    floors = figures["floors"]
    assert [row["stage"] for row in floors] == [
        "read",
        "parse timestamps",
        "validate",
        "H3",
        "count",
        "distances",
        "write",
    ]
    for row in floors:
        assert row["events"] == 5_000 and row["floor_is"] and row["load_1min"] >= 0
        assert min(row["ours_s"], row["ours_cpu_s"], row["floor_s"], row["floor_cpu_s"]) >= 0
    assert "per-stage floors" in done.stdout and "| **all** |" in done.stdout


@pytest.mark.slow
def test_the_docs_table_is_what_its_result_file_gives() -> None:
    """docs/benchmarks.md's tables are generated from the JSON files they name, not copied."""
    done = run_benchmark(str(BENCHMARKS / "pipeline_stages.py"), "--check-docs", timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
