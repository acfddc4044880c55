"""data_processing + feature_engineering on Spark against pandas, and Spark past what pandas takes.

For each size it writes N generated events as Parquet in a scratch copy of the project, then runs
`kedro run --pipelines data_processing,feature_engineering` in its own process, with pandas
(the default environment) and with Spark (`--env spark`, ``local[2]``, raw_events as Parquet),
and prints wall time, Kedro's node time, events/s, the CPU seconds its processes used (load
barely changes those, unlike wall time; the 1-minute load before and after each run is printed
beside it) and peak memory: of the whole process tree, and split into the Python driver, the
JVM (Spark's driver and executor, one process in local mode), the Python workers (H3
batches) and other processes (a shell Spark launches through), sampled from /proc every 0.2 s;
a process a JVM thread forked and has not exec'd yet shares the JVM's pages and is left out. ``--repeats`` alternates the engines N times on the
same sample; ``--keep DIR`` keeps the scratch projects and a later run reuses their samples.

``--events`` sizes come from the project's generator (`kedro run --pipelines
data_generation`). ``--large`` N is written chunk by chunk straight to a partitioned Parquet
folder: copies of the largest generated sample, each copy's order numbers made distinct (the
same city with N / sample times the pings: the duplicates and faults of the sample stay in
every copy, so the quarantine share is unchanged). At such a size the pandas run is attempted
once too (``--pandas-at-large``): the memory budget refuses it before reading anything.

    uv run --extra spark python benchmarks/spark_vs_pandas.py --events 1000000 10000000 \
        --large 100000000

``--toy`` is the test suite's run: 3,000 events, generated in this process (the generator's
node called directly spares a Kedro start-up), one pandas and one Spark run. ``--json PATH``
writes the results there instead of ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from stage_floors import project_parameters

from geo_busyness.pipelines.data_generation.nodes import generate_events
from geo_busyness.testing import PROJECT_ROOT, make_project_copy

KEDRO = str(Path(sys.executable).with_name("kedro"))
NODE_SECONDS = re.compile(r"successfully in ([\d.]+) sec")
RAW_FILE = "data/01_raw/courier_events.parquet"
RAW_FOLDER = "data/01_raw/courier_events_large"
PANDAS_RAW = """raw_events:
  type: pandas.ParquetDataset
  filepath: {path}
"""
#: The generator's output (``generated_events``, a CSV by default) as the same Parquet file.
GENERATED_RAW = """generated_events:
  type: pandas.ParquetDataset
  filepath: {path}
"""
SPARK_RAW = """
raw_events:
  type: spark.SparkDataset
  filepath: {path}
  file_format: parquet
"""
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, int, float]]:
    """pid -> (parent pid, command name, RSS bytes, CPU seconds so far) of every process now."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
        out[int(entry)] = (int(fields[1]), name, int(statm[1]) * _PAGE, cpu)
    return out


class TreeMemory:
    """Peak RSS of a process tree, in total and per role (driver, JVM, Python workers), and the
    CPU seconds its processes used (each process's last sample: the machine's load barely
    changes it, unlike wall time)."""

    def __init__(self, root: int, interval: float = 0.2, limit_mb: float | None = None) -> None:
        self.root, self.interval, self.limit_mb = root, interval, limit_mb
        self.killed = False
        self.peak = {"total": 0, "python_driver": 0, "jvm": 0, "python_workers": 0, "other": 0}
        #: Command names of the processes counted as "other" when that role peaked (a shell
        #: Spark launches through, for one).
        self.other_names: list[str] = []
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        procs = _processes()
        tree, frontier = set(), {self.root}
        while frontier:
            tree |= frontier
            frontier = {pid for pid, (ppid, *_) in procs.items() if ppid in frontier} - tree
        roles = {"total": 0, "python_driver": 0, "jvm": 0, "python_workers": 0, "other": 0}
        others = []
        for pid in tree & procs.keys():
            ppid, name, rss, cpu = procs[pid]
            self.cpu[pid] = cpu
            if name != "java" and procs.get(ppid, (0, ""))[1] == "java":
                # Forked by a JVM thread (named after it, "Executor task l...") and not yet
                # exec'd: its RSS is the JVM's own pages, shared copy-on-write; not counted.
                continue
            roles["total"] += rss
            if name == "java":
                roles["jvm"] += rss
            elif name.startswith(("python", "kedro")):
                roles[
                    "python_driver" if pid == self._driver(procs, tree) else "python_workers"
                ] += rss
            else:
                roles["other"] += rss
                others.append(name)
        if roles["other"] > self.peak["other"]:
            self.other_names = sorted(set(others))
        for role, value in roles.items():
            self.peak[role] = max(self.peak[role], value)
        if self.limit_mb and roles["total"] > self.limit_mb * 2**20 and not self.killed:
            # The machine is shared: a run heading for the OOM killer is stopped first.
            self.killed = True
            for pid in tree & procs.keys():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _driver(self, procs: dict, tree: set) -> int:
        """The kedro process: the tree's first Python process below /usr/bin/time."""
        for pid in sorted(tree):
            if pid in procs and procs[pid][1].startswith(("python", "kedro")):
                return pid
        return -1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def mb(self) -> dict[str, Any]:
        peaks = {f"peak_{role}_mb": round(value / 2**20) for role, value in self.peak.items()}
        return {
            **peaks,
            "other_processes": self.other_names,
            "cpu_s": round(sum(self.cpu.values()), 1),
        }


#: Largest memory (MB) a benchmarked run's process tree may take before it is killed.
MAX_MEMORY_MB = 16_000


def kedro_run(project: Path, args: list[str], timeout: float) -> dict:
    """One `kedro run` in its own process: wall and node seconds, peak memory, its outcome."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(
        [KEDRO, "run", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with TreeMemory(process.pid, limit_mb=MAX_MEMORY_MB) as memory:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            output += f"\nTIMEOUT after {timeout} s"
    wall = time.perf_counter() - started
    node = NODE_SECONDS.search(" ".join(output.split()))
    (project / f"run-{int(time.time())}.log").write_text(output)
    result = {
        "wall_s": round(wall, 1),
        "node_s": float(node.group(1)) if node else None,
        "ok": process.returncode == 0,
        "load_1min": round(load, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        **memory.mb(),
    }
    if memory.killed:
        result["error"] = f"killed at {MAX_MEMORY_MB:,} MB (the benchmark's memory guard)"
    elif not result["ok"]:
        lines = [line for line in output.splitlines() if line.strip()]
        result["error"] = " ".join(" ".join(lines[-6:]).split())[-600:]
    return result


def generate(project: Path, n: int, in_process: bool = False) -> None:
    """N events from the project's generator, as one Parquet file: by `kedro run --pipelines
    data_generation`, or (``in_process``) its first node called here, the same events."""
    (project / "conf/local/catalog.yml").write_text(
        PANDAS_RAW.format(path=RAW_FILE) + GENERATED_RAW.format(path=RAW_FILE)
    )
    if in_process:
        params = project_parameters(project)["data_generation"]
        events, _, _ = generate_events({**params, "n_events": n})
        events.to_parquet(project / RAW_FILE)
        return
    done = kedro_run(
        project,
        ["--pipelines", "data_generation", "--params", f"data_generation.n_events={n}"],
        3600,
    )
    if not done["ok"]:
        sys.exit(f"generation failed: {done.get('error')}")


def replicate(sample: Path, folder: Path, n: int) -> int:
    """Write copies of ``sample`` to ``folder`` (one Parquet file each) until ``n`` rows; each
    copy's order numbers are shifted past every earlier one. Returns the rows written."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(sample)
    orders = table.column("order_number")
    span = int(pc.max(orders).as_py() or 0) + 1
    written, copy = 0, 0
    while written < n:
        rows = min(len(table), n - written)
        part = table.slice(0, rows)
        shifted = pc.add(part.column("order_number"), pa.scalar(copy * span, orders.type))
        part = part.set_column(part.schema.get_field_index("order_number"), "order_number", shifted)
        pq.write_table(part, folder / f"part-{copy:05d}.parquet", row_group_size=1_000_000)
        written += rows
        copy += 1
        print(f"  wrote copy {copy} ({written:,} rows)", flush=True)
    return written


def refresh_conf(project: Path) -> None:
    """Replace a kept project copy's shared configuration with the checkout's (not conf/local)."""
    for env in (PROJECT_ROOT / "conf").iterdir():
        if env.is_dir() and env.name != "local":
            shutil.rmtree(project / "conf" / env.name, ignore_errors=True)
            shutil.copytree(env, project / "conf" / env.name)


def spark_env(project: Path, raw: str, master: str) -> str:
    """A `spark_bench` environment: conf/spark with raw_events as Parquet and ``master``."""
    bench = project / "conf" / "spark_bench"
    bench.mkdir(exist_ok=True)
    catalog = (project / "conf/spark/catalog.yml").read_text()
    catalog = re.sub(r"(?ms)^raw_events:\n.*?(?=^# ---------- 02)", "", catalog)
    (bench / "catalog.yml").write_text(catalog + SPARK_RAW.format(path=raw))
    spark = (project / "conf/spark/spark.yml").read_text()
    (bench / "spark.yml").write_text(
        re.sub(r"(?m)^spark.master: .*$", f"spark.master: {master}", spark)
    )
    return "spark_bench"


def report(n: int, engine: str, result: dict) -> dict:
    row = {"events": n, "engine": engine, **result}
    row["events_per_s"] = (
        round(n / result["node_s"]) if result.get("node_s") and result["ok"] else None
    )
    print(
        f"N={n:>12,} {engine:<7} wall {row['wall_s']:7.1f} s  nodes {row['node_s'] or 0:7.1f} s  "
        f"{row['events_per_s'] or 0:>10,} ev/s  CPU {row['cpu_s']:6.1f} s  peak {row['peak_total_mb']:>6,} MB "
        f"(driver {row['peak_python_driver_mb']:,}, JVM {row['peak_jvm_mb']:,}, "
        f"workers {row['peak_python_workers_mb']:,}, other {row.get('peak_other_mb', 0):,}"
        f"{' ' + '/'.join(row['other_processes']) if row.get('other_processes') else ''})  "
        f"load {row['load_1min']} -> {row['load_1min_after']}"
        + ("" if row["ok"] else f"  FAILED: {row.get('error', '')[:300]}"),
        flush=True,
    )
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| events | engine | wall s | node s | CPU s | events/s (node) | peak total MB | Python driver MB | JVM MB | Python workers MB | load before -> after |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['events']:,} | {r['engine']}{'' if r['ok'] else ' (refused/failed)'} | {r['wall_s']:.1f} | "
            f"{r['node_s'] or 0:.1f} | {r['cpu_s']:.1f} | {r['events_per_s'] or 0:,} | {r['peak_total_mb']:,} | "
            f"{r['peak_python_driver_mb']:,} | {r['peak_jvm_mb']:,} | {r['peak_python_workers_mb']:,} | "
            f"{r['load_1min']} -> {r.get('load_1min_after', '')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--large", type=int, default=None, help="Spark only, replicated sample")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--pandas-at-large", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", type=Path, default=None, help="scratch folder to keep")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each engine per size, alternating"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--toy", action="store_true", help="the test suite's small run")
    args = parser.parse_args()
    if args.toy:
        args.events, args.large, args.repeats, args.timeout = [3_000], None, 1, 600

    common = ["--pipelines", "data_processing,feature_engineering"]
    rows, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as scratch:
        root = args.keep or Path(scratch)
        for n in args.events:
            project = root / f"n{n}"
            if (project / RAW_FILE).exists():  # a kept folder's sample, with today's conf
                refresh_conf(project)
            else:
                generate(make_project_copy(project), n, in_process=args.toy)
            env = spark_env(project, RAW_FILE, args.master)
            for _ in range(args.repeats):
                rows.append(report(n, "pandas", kedro_run(project, common, args.timeout)))
                rows.append(
                    report(n, "spark", kedro_run(project, [*common, "--env", env], args.timeout))
                )
        if args.large:
            project = root / f"n{args.large}"
            shutil.rmtree(project, ignore_errors=True)  # a kept folder's copy: written anew
            project = make_project_copy(project)
            sample = root / f"n{max(args.events)}" / RAW_FILE
            print(f"writing {args.large:,} events to {RAW_FOLDER} ...", flush=True)
            t0 = time.perf_counter()
            replicate(sample, project / RAW_FOLDER, args.large)
            print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
            env = spark_env(project, RAW_FOLDER, args.master)
            rows.append(
                report(
                    args.large, "spark", kedro_run(project, [*common, "--env", env], args.timeout)
                )
            )
            if args.pandas_at_large:
                (project / "conf/local/catalog.yml").write_text(PANDAS_RAW.format(path=RAW_FOLDER))
                rows.append(report(args.large, "pandas", kedro_run(project, common, args.timeout)))
    elapsed = round(time.perf_counter() - started)
    print(f"\n{table(rows)}\n\nwhole benchmark: {elapsed} s")
    out = args.json or (
        PROJECT_ROOT
        / "benchmarks/results"
        / f"spark_vs_pandas-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "cpus": os.cpu_count(),
                "benchmark_seconds": elapsed,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
