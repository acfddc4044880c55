"""benchmarks/forecast_battery.py at toy size: it cannot break unseen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.running import BENCHMARKS, run_benchmark

#: The suite's small random forest (tests/conftest.py SMALL_TRAINING) and fewer permutation and
#: leaky-protocol rows, through the script's own ``--param``: every candidate, the forest's grid
#: search included, still runs; only the sizes are the tests' (the shipped grid fits 4 x 3).
SMALL_MODELING = (
    "modeling.random_forest.max_train_rows=20000",
    "modeling.random_forest.cv_splits=2",
    "modeling.random_forest.params.n_estimators=20",
    "modeling.random_forest.grid={max_depth: [8], min_samples_leaf: [20, 100]}",
    "modeling.permutation_repeats=1",
    "modeling.leaky_reference_protocol.max_rows=10000",
)


@pytest.mark.slow
def test_the_forecast_battery_runs_at_toy_size(tmp_path: Path) -> None:
    """A small synthetic city through the real pipelines: one row per product x bucket with
    the model beside the three baselines, the chosen candidate and the gate, in JSON."""
    out = tmp_path / "battery.json"
    sizes = [f"--param={item}" for item in SMALL_MODELING]
    done = run_benchmark(
        *(str(BENCHMARKS / "forecast_battery.py"), "--toy", *sizes, "--json", str(out)),
        timeout=900,
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
    selection = result["runs"][0]["selection"]  # what validation saw and chose, per run
    assert selection["validation_average"]["seasonal_naive"] == pytest.approx(1.0)
    assert result["runs"][0]["chosen"] in selection["validation_average"]
    assert "battery wall" in done.stdout


def test_the_docs_battery_tables_are_what_their_result_file_gives() -> None:
    """docs/forecast.md's table and README's summary are generated from the result file they
    name (`forecast_battery.py --docs`), never hand-copied."""
    done = run_benchmark(str(BENCHMARKS / "forecast_battery.py"), "--check-docs", timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
