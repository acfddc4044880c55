"""Running a benchmark script as a user runs it (the toy-size tests of tests/benchmarks/)."""

from __future__ import annotations

import os
import subprocess
import sys

from geo_busyness.testing import PROJECT_ROOT

BENCHMARKS = PROJECT_ROOT / "benchmarks"


def run_benchmark(
    *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """A benchmark script run as a user runs it (``env`` added to the environment); its output
    for the assertion message."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
