"""benchmarks/spark_vs_pandas.py at toy size: it cannot break unseen (needs pyspark and Java,
as the Spark tests do: `make test` installs the spark extra). About 2 minutes at load 5-10 on
2 cores, nearly all of it Spark's fixed cost (a session, its JIT): 3,000 events take ~58 s of
Spark node time, as data_processing alone does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.benchmarks.running import BENCHMARKS, run_benchmark


@pytest.mark.slow
def test_spark_vs_pandas_runs_at_toy_size(tmp_path: Path) -> None:
    """The same generated sample through data_processing + feature_engineering on both
    engines: both succeed and are timed, only Spark's process tree holds a JVM, and the
    printed table has both rows."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ (`make install-spark`)")
    out = tmp_path / "spark.json"
    done = run_benchmark(
        str(BENCHMARKS / "spark_vs_pandas.py"), "--toy", "--json", str(out), timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {row["engine"]: row for row in json.loads(out.read_text())["rows"]}
    assert sorted(rows) == ["pandas", "spark"]
    for engine, row in rows.items():
        assert row["ok"], row.get("error")
        assert row["events"] == 3_000
        assert row["wall_s"] > row["node_s"] > 0, engine
        assert row["events_per_s"] > 0 and row["cpu_s"] > 0 and row["peak_python_driver_mb"] > 0
    assert rows["spark"]["peak_jvm_mb"] > 0 and rows["pandas"]["peak_jvm_mb"] == 0
    assert "| 3,000 | pandas |" in done.stdout and "| 3,000 | spark |" in done.stdout
