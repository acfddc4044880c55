"""benchmarks/operations_soak.py at toy size: the weekly loop as an operator drives it (the
six-week Airflow run is the script's own default; docs/operations.md has its timeline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geo_busyness.testing import PROJECT_ROOT


@pytest.mark.slow
def test_the_soak_runs_a_week_with_the_server_answering_throughout(tmp_path: Path) -> None:
    """A small city trained, its first job deploying v1, `kedro serve` following the champion
    and the counts state while a week lands and `kedro retrain` ingests and judges it."""
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "benchmarks" / "operations_soak.py"),
            *("--toy", "--driver", "kedro", "--weeks", "1", "--json", str(out)),
            *("--keep", str(tmp_path / "scratch")),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    (week,) = result["weeks"]
    assert week["batch_rows_clean"] > 0 and week["job_status"] in ("skipped", "promoted")
    assert week["registry"]["aliases"]["champion"] == "1" or week["job_status"] == "promoted"
    serving = result["serving"]
    assert serving["requests"] > 0 and serving["failed"] == 0, serving["failures"]
    # The week's counts reached the running server without a restart.
    assert len({row["counts_end"] for row in result["nowcast_by_counts_end"]}) == 2
    assert result["alerts"]["webhook"] == result["alerts"]["sns"]
    assert result["alerts"]["webhook"].get("challenger_promoted") >= 1  # the first deployment
    assert result["registries_outside_the_project"] == []
    assert "server:" in done.stdout and "week 1" in done.stdout
