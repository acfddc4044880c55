"""benchmarks/real_data.py at toy size, on a small table the test writes in a schema of its
own (the generator's city, columns renamed): it cannot break unseen, and it needs none of
the shared data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geo_busyness.pipelines.data_generation.nodes import generate_events
from geo_busyness.testing import PROJECT_ROOT
from tests.benchmarks.running import BENCHMARKS, run_benchmark
from tests.conftest import SMALL_GENERATION

BASELINES = ["seasonal_naive", "level_adjusted", "recent_level"]


def trip_table(path: Path) -> Path:
    """Five weeks of the small city as a trip table: `started_at` (naive local time), `lat`,
    `lng`, and a column the benchmark must leave out."""
    import yaml  # noqa: PLC0415 - only here

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_data_generation.yml").read_text())
    events, _, _ = generate_events(
        {**params["data_generation"], **SMALL_GENERATION, "weeks": 5, "n_events": 12_000}
    )
    trips = events.rename(
        columns={
            "courier_location_timestamp": "started_at",
            "courier_lat": "lat",
            "courier_lon": "lng",
        }
    )[["started_at", "lat", "lng", "courier_id"]]
    trips.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_real_data_runs_at_toy_size(tmp_path: Path) -> None:
    """The mapped table through processing, features and modeling (baselines only): one row
    per product x bucket, the chosen candidate among those allowed, the gate, in JSON and in
    the printed table."""
    csv = trip_table(tmp_path / "trips.csv")
    out = tmp_path / "real.json"
    done = run_benchmark(
        str(BENCHMARKS / "real_data.py"),
        str(csv),
        *("--time", "started_at", "--lat", "lat", "--lon", "lng"),
        *("--timezone", "America/Regina", "--resolution", "7", "--json", str(out)),
        *("--param", f"modeling.candidates=[{','.join(BASELINES)}]"),
        *("--param", "feature_engineering.validation_days=5"),
        *("--param", "feature_engineering.test_days=5"),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["chosen"] in BASELINES
    buckets = {(row["product"], row["bucket"]) for row in result["test"]["backtest"]}
    assert {("nowcast", "1-3h"), ("day_ahead", "4-24h")} <= buckets
    for row in result["test"]["backtest"]:
        assert row["rows"] > 0 and row["model"]["mae"] >= 0
    assert result["wall_s"] > 0 and isinstance(result["gate"]["passed"], bool)
    assert f"chosen on validation: {result['chosen']}" in done.stdout
    assert "seasonal_naive_mae" in done.stdout and "gate: " in done.stdout
