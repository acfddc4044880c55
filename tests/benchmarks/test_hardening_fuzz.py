"""benchmarks/hardening_fuzz.py at toy size: every attack beside valid clients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geo_busyness.remote import ENV_PROBE_BUDGET_S
from tests.benchmarks.running import BENCHMARKS, run_benchmark

#: Part 7's start-up probe budget (s): the default one is kept by tests/test_remote.py's
#: `python -m geo_busyness.serving` check; the 30 s bound below still fails a start-up that
#: waits on a silent tracking server without a deadline.
PROBE_BUDGET_S = "2"
#: Part 5's seconds per attack (the toy's own: 5): still twice the server's 2 s deadlines, so
#: the slow bodies and the non-reading clients are cut within their round.
ROUND_SECONDS = "4"


@pytest.mark.slow
def test_hardening_fuzz_runs_at_toy_size(tmp_path: Path) -> None:
    """Parts 1-4 (issue #15) and every attack of issue #23 beside valid clients, small: no
    5xx for the valid clients, and the slow bodies and non-reading clients cut."""
    out = tmp_path / "fuzz.json"
    done = run_benchmark(
        *(str(BENCHMARKS / "hardening_fuzz.py"), "--toy", "--round-seconds", ROUND_SECONDS),
        *("--json", str(out)),
        timeout=600,
        env={ENV_PROBE_BUDGET_S: PROBE_BUDGET_S},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["malformed"]["5xx"] == 0 and figures["stalled"]["still_open"] == 0
    rounds = {row["attack"]: row for row in figures["attacks"]}
    assert set(rounds) == {"none (baseline)", "wide CSV", "slow bodies", "non-reading clients"}
    for row in rounds.values():
        assert row["valid"]["n"] > 0 and row["valid_past_hour"]["n"] > 0, row
        assert row["valid_5xx"] == 0, row
        assert row["rss_before_mb"] <= row["rss_peak_mb"]
    assert "{400:" in rounds["wide CSV"]["note"]
    assert " 0 cut" not in rounds["slow bodies"]["note"]
    assert rounds["non-reading clients"]["note"].endswith("4 cut by the server")
    assert "5. attacks beside valid clients" in done.stdout
    tampered = figures["tampered_artifacts"]
    assert tampered["refused"] == tampered["loads"] >= 18 and tampered["code_ran"] is False
    assert figures["silent_endpoints"]["max_seconds"] < 30
