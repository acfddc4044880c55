"""benchmarks/monitoring_level.py at toy size: it cannot break unseen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.running import BENCHMARKS, run_benchmark


@pytest.mark.slow
def test_monitoring_level_runs_at_toy_size(tmp_path: Path) -> None:
    """One small city trained on the baselines, then its recent week as generated and 30% busier:
    the level check sees the shift (a higher change against the profile, more events), and
    the tables and the JSON carry every week."""
    out = tmp_path / "level.json"
    done = run_benchmark(
        str(BENCHMARKS / "monitoring_level.py"),
        *("--toy", "--json", str(out), "--workdir", str(tmp_path / "work")),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    weeks = {week["factor"]: week for week in result["weeks"]}
    assert sorted(weeks) == [1.0, 1.3]
    assert {week["data"] for week in weeks.values()} == {"toy-42"}
    assert weeks[1.3]["actual_total"] > 1.15 * weeks[1.0]["actual_total"]
    assert weeks[1.3]["relative_change"] > weeks[1.0]["relative_change"] + 0.15
    assert weeks[1.3]["p_value"] < weeks[1.0]["p_value"]
    for week in weeks.values():
        assert week["expected_total"] > 0 and 0 <= week["p_value"] <= 1
        assert isinstance(week["level_fired"], bool)
    assert set(result["thresholds"]) >= {"level_change", "level_p_value"}
    assert "| toy-42 (" in done.stdout and "| level_change | level_p_value |" in done.stdout
