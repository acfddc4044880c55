"""Time each pipeline stage as its own `kedro run` process at several event counts.

For every N it generates N events (Parquet raw, so CSV parsing does not swamp the figures) in a
scratch copy of the project, then runs each stage as a separate process under
``/usr/bin/time -v`` (and then all of them together in one ``kedro run --pipelines a,b``, as
a user runs them) and prints wall time, Kedro's own node time (the runner's "completed
successfully in" figure: loads, node work and saves, without Kedro/MLflow start-up), peak RSS,
events/second and the 1-minute load average before the run, plus the fitted growth exponent
of node time and of wall time in N. ``--default-run-at N`` also times one plain `kedro run`
(the default pipeline: processing, features, modeling) at N. Results go to
``benchmarks/results/pipeline_stages-<utc time>.json`` and a markdown table to stdout.

    uv run python benchmarks/pipeline_stages.py --events 100000 1000000 10000000 \
        --modeling-at 1000000 --default-run-at 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from geo_busyness.testing import PROJECT_ROOT, make_project_copy

KEDRO = str(Path(sys.executable).with_name("kedro"))
NODE_SECONDS = re.compile(r"successfully in ([\d.]+) sec")
RAW_AS_PARQUET = """raw_events:
  type: pandas.ParquetDataset
  filepath: data/01_raw/courier_events.parquet
"""


def run_stage(project: Path, pipeline: str | None, params: str | None = None) -> dict[str, float]:
    """One `kedro run` in its own process (``pipeline`` None: the default pipeline); wall
    seconds, node seconds, peak RSS in MB and the load average before it started."""
    command = ["/usr/bin/time", "-v", KEDRO, "run"]
    if pipeline:
        command += ["--pipelines", pipeline]
    if params:
        command += ["--params", params]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        command, check=False, cwd=project, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(
            f"`{' '.join(command[2:])}` failed in {project}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    peak_kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    node = NODE_SECONDS.search(" ".join(done.stdout.split()))
    return {
        "wall_s": round(wall, 2),
        "node_s": float(node.group(1)) if node else float("nan"),
        "peak_rss_mb": round(int(peak_kb.group(1)) / 1024, 1) if peak_kb else float("nan"),
        "load_1min": round(load, 2),
    }


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log(time) on log(N): 1.0 is linear."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def table(rows: list[dict]) -> str:
    """The results as a markdown table."""
    lines = [
        "| events | stage | wall s | node s | peak RSS MB | events/s (node) | load 1 min |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['events']:,} | {r['stage']} | {r['wall_s']:.1f} | {r['node_s']:.1f} | "
        f"{r['peak_rss_mb']:,.0f} | {r['events_per_s'] or 0:,} | {r['load_1min']:.1f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--stages", nargs="+", default=["data_processing", "feature_engineering"])
    parser.add_argument(
        "--no-together",
        action="store_true",
        help="skip the run of all --stages in one process (`kedro run --pipelines a,b`)",
    )
    parser.add_argument(
        "--modeling-at", type=int, default=1_000_000, help="also run modeling at this N"
    )
    parser.add_argument(
        "--default-run-at", type=int, default=None, help="also time a plain `kedro run` at this N"
    )
    args = parser.parse_args()

    together = [] if args.no_together else [",".join(args.stages)]
    rows = []
    started = time.perf_counter()
    for n in args.events:
        with tempfile.TemporaryDirectory(prefix=f"bench-{n}-") as scratch:
            project = make_project_copy(Path(scratch) / "project", PROJECT_ROOT)
            (project / "conf" / "local" / "catalog.yml").write_text(RAW_AS_PARQUET)
            generated = run_stage(project, "data_generation", f"data_generation.n_events={n}")
            print(f"N={n:>11,}  data_generation      {generated['wall_s']:7.1f} s wall", flush=True)
            stages = args.stages + together + (["modeling"] if n == args.modeling_at else [])
            if n == args.default_run_at:
                stages.append("__default__")
            for stage in stages:
                pipeline = None if stage == "__default__" else stage
                result = {"events": n, "stage": stage, **run_stage(project, pipeline)}
                result["events_per_s"] = round(n / result["node_s"]) if result["node_s"] else None
                rows.append(result)
                print(
                    f"N={n:>11,}  {stage:<36} {result['wall_s']:7.1f} s wall  "
                    f"{result['node_s']:7.1f} s nodes  {result['peak_rss_mb']:8.0f} MB peak  "
                    f"{result['events_per_s'] or 0:>12,} events/s  load {result['load_1min']:.1f}",
                    flush=True,
                )

    exponents = {}
    for stage in args.stages + together:
        for measure in ("node_s", "wall_s"):
            points = [(r["events"], r[measure]) for r in rows if r["stage"] == stage]
            if len(points) >= 2:
                key = f"{stage}.{measure}"
                exponents[key] = round(growth_exponent(*map(list, zip(*points, strict=True))), 3)
                print(f"growth exponent of {measure} in N, {stage}: {exponents[key]}")
    total = {}
    for r in rows:
        if r["stage"] in args.stages:
            total.setdefault(r["events"], []).append(r["node_s"])
    if len(total) >= 2:
        sizes = sorted(total)
        exponents["processing+features.node_s"] = round(
            growth_exponent(sizes, [sum(total[n]) for n in sizes]), 3
        )
        print(
            f"growth exponent, processing + features node time: {exponents['processing+features.node_s']}"
        )
    elapsed = round(time.perf_counter() - started)
    print(f"\n{table(rows)}\n\nwhole benchmark: {elapsed} s")
    out_dir = PROJECT_ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"pipeline_stages-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "cpus": os.cpu_count(),
                "benchmark_seconds": elapsed,
                "rows": rows,
                "growth_exponents": exponents,
            },
            indent=2,
        )
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
