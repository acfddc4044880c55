"""benchmarks/pipeline_stages.py at toy size, and the docs table its JSON gives."""

from __future__ import annotations

import datetime as dt
import importlib
import json
from pathlib import Path

import pyarrow as pa
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
        "split",
        "validate",
        "H3",
        "count",
        "distances",
        "summarise",
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


def test_the_parse_floor_is_arrow_s_strict_cast_of_the_text_it_takes(monkeypatch) -> None:
    """The parse stage's floor is the cast the cleaning node itself uses (values it refuses
    nulled beforehand); strptime only when the cast refuses text strptime takes (Feb 30)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as the benchmark scripts import it
    stage_floors = importlib.import_module("stage_floors")

    text = pa.chunked_array([["2026-01-05T10:30:00", "not a time", None]])
    (parsed, wall, cpu), floor_is = stage_floors._parse_floor([text, text])
    assert floor_is is None and "cast" in stage_floors.FLOOR_IS["parse timestamps"]
    assert parsed[0].to_pylist() == [dt.datetime(2026, 1, 5, 10, 30), None, None]
    assert wall >= 0 and cpu >= 0
    rolled_over = pa.chunked_array([["2026-02-30T10:00:00"]])
    _, floor_is = stage_floors._parse_floor([rolled_over, text])
    assert floor_is == stage_floors.STRPTIME_FLOOR
