"""Weekly operations cycles on the synthetic city, driven as an operator drives them.

    uv run python benchmarks/operations_soak.py              # six weeks, the 4th x1.3, Airflow
    uv run python benchmarks/operations_soak.py --driver kedro --weeks 3
    uv run python benchmarks/operations_soak.py --toy        # the suite's: a small city, 2 weeks

A scratch copy of the project, as a fresh clone (the relative ``sqlite:///mlflow.db`` of
conf/base), goes through ``kedro generate-data`` and ``kedro run`` (what ``make run`` trains),
then one driver run (``airflow dags test`` from a folder that is not the project, or ``kedro
retrain``) deploys the registered version. ``kedro serve`` then runs throughout, following the
champion alias and the published counts state, while a client asks it for the next hour at the
busiest cells every ``--interval`` seconds. Each week a batch lands in the landing folder
(week ``--shift-week`` scaled by ``--shift``) and the driver runs the job: ingestion,
monitoring, retraining when due, deployment. Alerts go to a local webhook and to moto's SNS
(read back through an SQS queue).

Printed: one line per week (batch rows, monitoring's verdict and reasons, the job's outcome,
champion before/after, the server's version and counts end, the nowcast against the week
before, alerts received), then the soak's totals: failed requests, the time from a promotion
to the new version answering, alerts per event, and where registries were written. ``--json``
keeps it all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import yaml

from geo_busyness.pipelines.data_generation.landing import batch_name, land_synthetic_batch
from geo_busyness.testing import (
    CANDIDATES_WITHOUT_FOREST,
    FAKE_AWS,
    PROJECT_ROOT,
    LocalWebhook,
    free_port,
    make_project_copy,
    ping,
    received_notifications,
    start_moto,
    stop_process_group,
    subscribe_queue,
)

KEDRO = str(Path(sys.executable).with_name("kedro"))
AIRFLOW_VENV = PROJECT_ROOT / ".venv-airflow"
DAG_ID = "geo_busyness_monitoring_retraining"
MODEL = "geo-busyness"
REGION = FAKE_AWS["AWS_DEFAULT_REGION"]
#: The toy: a small city and the tests' training windows (minutes, not tens of minutes).
TOY_PARAMETERS = {
    "data_generation": {"n_events": 30_000, "weeks": 4, "n_restaurants": 60, "n_couriers": 80},
    "feature_engineering": {"validation_days": 5, "test_days": 5},
    "modeling": {
        "learned_min_train_days": 3,
        # No random forest: its grid search is the slowest fit, and the toy judges the loop.
        "candidates": list(CANDIDATES_WITHOUT_FOREST),
        "random_forest": {"max_train_rows": 20_000, "cv_splits": 2, "params": {"n_estimators": 20}},
        "forecaster": {"max_train_rows": 100_000},
        "permutation_repeats": 1,
        "leaky_reference_protocol": {"max_rows": 10_000},
    },
}


# ------------------------------------------------------------------ alert receivers
def webhook_events(webhook: LocalWebhook) -> list[str]:
    """Each message's event name (``[geo-busyness] LEVEL event: ...``)."""
    return [_event_of(payload.get("text", "")) for payload in webhook.payloads()]


class MotoSns:
    """moto's SNS on a loopback port, with an SQS queue subscribed to read what was published."""

    def __init__(self) -> None:
        self.process, self.endpoint = start_moto()
        client = {"endpoint_url": self.endpoint, "region_name": REGION, **_boto_keys()}
        self.sqs = boto3.client("sqs", **client)
        sns = boto3.client("sns", **client)
        self.topic_arn = sns.create_topic(Name="geo-busyness-alerts")["TopicArn"]
        self.queue_url = subscribe_queue(sns, self.sqs, self.topic_arn)
        self.received: list[str] = []

    def events(self) -> list[str]:
        """Every event published so far (the queue drained into ``received``)."""
        while batch := received_notifications(self.sqs, self.queue_url):
            self.received += [body.get("Subject") or body.get("Message", "") for body in batch]
        return [_event_of(text) for text in self.received]

    def stop(self) -> None:
        stop_process_group(self.process, timeout=20)


def _event_of(text: str) -> str:
    match = re.search(r"\]\s+(?:[A-Z]+\s+)?([a-z_]+):", text)
    return match.group(1) if match else text[:40]


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
    }


# ------------------------------------------------------------------ the project
def prepare_project(scratch: Path, toy: bool, webhook: LocalWebhook, sns: MotoSns) -> Path:
    """A fresh-clone copy: conf/base's relative MLflow store, alerts to the local receivers."""
    project = make_project_copy(scratch / "project")
    mlflow_yml = project / "conf" / "base" / "mlflow.yml"
    mlflow_yml.write_text(
        re.sub(
            r"(?m)^(\s*mlflow_tracking_uri:)\s*\S+",
            r"\1 sqlite:///mlflow.db",
            mlflow_yml.read_text(),
        )
    )
    local = project / "conf" / "local"
    local.mkdir(parents=True, exist_ok=True)
    alerts = {
        "alerts": {
            "enabled": True,
            "project": "geo-busyness (soak)",
            "sns": {"topic_arn": sns.topic_arn, "endpoint_url": sns.endpoint},
            "webhook": {"retry_wait_seconds": 0},
        }
    }
    (local / "parameters_alerts.yml").write_text(yaml.safe_dump(alerts))
    (local / "credentials.yml").write_text(yaml.safe_dump({"alerts_webhook": {"url": webhook.url}}))
    if toy:
        (local / "parameters.yml").write_text(yaml.safe_dump(TOY_PARAMETERS))
    return project


def environment(project: Path) -> dict[str, str]:
    """What every command of the soak runs with: the project, the local env, fake AWS keys."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return (
        env
        | FAKE_AWS
        | {
            "GEO_BUSYNESS_PROJECT_PATH": str(project),
            "KEDRO_ENV": "local",
            "KEDRO_DISABLE_TELEMETRY": "1",
        }
    )


def kedro(project: Path, *args: str, log: Path) -> float:
    """One ``kedro`` command in the project (its output appended to ``log``); its wall time."""
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ kedro {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(
            [KEDRO, *args],
            check=False,
            cwd=project,
            env=environment(project),
            stdout=out,
            stderr=out,
        )
    if done.returncode != 0:
        raise RuntimeError(f"kedro {' '.join(args)} failed ({done.returncode}); see {log}")
    return time.perf_counter() - started


class AirflowDriver:
    """``airflow dags test`` of the project's DAG, from a worker folder that is not the project."""

    def __init__(self, project: Path, scratch: Path, log: Path) -> None:
        self.project, self.log = project, log
        self.home = scratch / "airflow_home"
        self.home.mkdir()
        self.airflow = AIRFLOW_VENV / "bin" / "airflow"
        if not self.airflow.exists():
            raise SystemExit(f"{self.airflow} is missing: `make install-airflow` builds it.")
        self.env = environment(project) | {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "airflow" / "dags"),
        }
        self._run("db", "migrate")
        self.runs = 0

    def _run(self, *args: str) -> None:
        with self.log.open("a") as out:
            out.write(f"\n$ (cd {self.home}) airflow {' '.join(args)}\n")
            out.flush()
            done = subprocess.run(
                [str(self.airflow), *args],
                check=False,
                cwd=self.home,
                env=self.env,
                stdout=out,
                stderr=out,
            )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed; see {self.log}")

    def cycle(self) -> float:
        """One DAG run (a new logical date each time); its wall time."""
        started = time.perf_counter()
        self.runs += 1
        self._run("dags", "test", DAG_ID, f"2026-12-{self.runs:02d}T05:00:00+00:00")
        return time.perf_counter() - started


class KedroDriver:
    """``kedro retrain`` in the project."""

    def __init__(self, project: Path, scratch: Path, log: Path) -> None:
        self.project, self.log = project, log

    def cycle(self) -> float:
        return kedro(self.project, "retrain", log=self.log)


# ------------------------------------------------------------------ the server and its client
class Client:
    """Asks the server for the hour after its counts end at fixed points, every ``interval``
    seconds, recording each answer's time, status, model version, counts end and total."""

    def __init__(self, url: str, points: list[tuple[float, float]], interval: float) -> None:
        self.url, self.points, self.interval = url, points, interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.ask())
            self._stop.wait(self.interval)

    def ask(self) -> dict[str, Any]:
        """One /ping for the counts end, one /invocations for the hour it starts."""
        at = time.time()
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=5) as answer:  # noqa: S310
                state = json.loads(answer.read() or b"{}")
            hour = state.get("counts_end")
            rows = [
                {"courier_location_timestamp": hour, "courier_lat": lat, "courier_lon": lon}
                for lat, lon in self.points
            ]
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{self.url}/invocations",
                data=json.dumps(rows).encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                body = json.loads(answer.read())
                version = answer.headers.get("X-Model-Version")
                status = answer.status
            answers = body if isinstance(body, list) else body.get("predictions", body)
            total = float(sum(row["predicted_busyness"] for row in answers))
        except urllib.error.HTTPError as error:
            return {"at": at, "status": error.code, "error": str(error)}
        except (OSError, ValueError, KeyError) as error:
            return {"at": at, "status": None, "error": f"{type(error).__name__}: {error}"}
        return {"at": at, "status": status, "version": version, "counts_end": hour, "total": total}


def start_server(project: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``kedro serve`` in the project (following the champion and the counts state)."""
    port = free_port()
    out = log.open("ab")
    process = subprocess.Popen(
        [KEDRO, "serve", "--host", "127.0.0.1", "--port", str(port), "--poll-interval", "2"],
        cwd=project,
        env=environment(project),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: process.poll() is None and ping(url) == 200, 600, f"kedro serve (see {log})")
    return process, url


def busiest_points(project: Path, n: int = 10) -> list[tuple[float, float]]:
    """Centres of the ``n`` cells with the most clean events (where a nowcast moves most)."""
    import pandas as pd  # noqa: PLC0415 - only here
    from h3.api import basic_int  # noqa: PLC0415

    events = pd.read_parquet(project / "data" / "03_primary" / "clean_events.parquet")
    cells = events["h3_index"] if "h3_index" in events else None
    if cells is None:
        from geo_busyness.model.geo import h3_cells  # noqa: PLC0415

        cells = pd.Series(h3_cells(events["courier_lat"], events["courier_lon"], 8))
    top = cells.value_counts().index[:n]
    return [basic_int.cell_to_latlng(int(cell)) for cell in top]


# ------------------------------------------------------------------ what each week left
def registry(project: Path) -> dict[str, Any]:
    """Versions and aliases of the project's own store (sqlite3: no MLflow)."""
    with contextlib.closing(sqlite3.connect(project / "mlflow.db")) as db:
        versions = sorted(int(v) for (v,) in db.execute("SELECT version FROM model_versions"))
        aliases = dict(db.execute("SELECT alias, version FROM registered_model_aliases"))
    return {"versions": versions, "aliases": {k: str(v) for k, v in aliases.items()}}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def latest_record(project: Path, seen: set[Path]) -> dict[str, Any] | None:
    """The retraining record written since the last look (None when none was)."""
    folder = project / "data" / "08_reporting" / "retraining" / "retraining_record.json"
    fresh = [p for p in sorted(folder.glob("*/*.json")) if p not in seen]
    seen.update(fresh)
    return read_json(fresh[-1]) if fresh else None


def week_row(
    week: int, *, scale: float, project: Path, record: dict | None, alerts: list[str], wall: float
) -> dict[str, Any]:
    """What week ``week`` left: the batch, monitoring's verdict, the job's outcome."""
    ingestion = read_json(project / "data" / "03_primary" / "ingestion_record.json") or {}
    batch = ingestion.get("batches", {}).get(batch_name(week), {})
    monitoring = project / "data" / "08_reporting" / "monitoring"
    verdict = read_json(monitoring / "retrain_recommended.json") or {}
    level = (read_json(monitoring / "monitoring_report.json") or {}).get("level") or {}
    return {
        "week": week,
        "scale": scale,
        "batch_rows_in": batch.get("rows_in"),
        "batch_rows_clean": batch.get("rows_clean"),
        "retrain_recommended": verdict.get("retrain_recommended"),
        "level": {
            key: level.get(key)
            for key in ("actual_total", "expected_total", "relative_change", "p_value", "fired")
        },
        "reasons": verdict.get("reasons", []),
        "job_status": (record or {}).get("status"),
        "champion_before": (record or {}).get("champion_before"),
        "champion_after": (record or {}).get("champion_after"),
        "alerts": alerts,
        "driver_wall_s": round(wall, 1),
        "registry": registry(project),
    }


def serving_timeline(samples: list[dict], promotions: list[tuple[float, str]]) -> dict[str, Any]:
    """Failed requests, and for each promotion the seconds until the new version answered."""
    failed = [s for s in samples if s.get("status") != 200]
    delays = []
    for moved_at, version in promotions:
        first = next(
            (s["at"] for s in samples if s["at"] >= moved_at and s.get("version") == version), None
        )
        delays.append({"version": version, "seconds": None if first is None else first - moved_at})
    return {
        "requests": len(samples),
        "failed": len(failed),
        "failures": failed[:5],
        "swaps": delays,
    }


def nowcast_by_week(samples: list[dict]) -> list[dict[str, Any]]:
    """For each counts end (one per week once its batch is in) and model version answering
    from it, the first nowcast total seen: a new counts end answered by the old version is the
    nowcast moving with the data before any retrain."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in samples:
        if sample.get("status") == 200 and sample.get("counts_end"):
            key = (sample["counts_end"], sample.get("version"))
            seen.setdefault(key, {"at": sample["at"], "total": round(sample["total"], 2)})
    return [
        {"counts_end": end, "version": version, **first} for (end, version), first in seen.items()
    ]


# ------------------------------------------------------------------ small helpers
def _wait(ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.5)


def _alias_watch(project: Path, samples: list, stop: threading.Event) -> None:
    """The moment each champion move is seen in the project's registry (every 0.5 s)."""
    last = None
    while not stop.is_set():
        with contextlib.suppress(sqlite3.Error):
            champion = registry(project)["aliases"].get("champion")
            if champion != last:
                samples.append((time.time(), champion))
                last = champion
        stop.wait(0.5)


# ------------------------------------------------------------------ the soak
def soak(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Everything the module docstring says, in order; returns what it saw."""
    log = scratch / "soak.log"
    webhook, sns = LocalWebhook("/services/soak/secret"), MotoSns()
    project = prepare_project(scratch, args.toy, webhook, sns)
    driver_cls = AirflowDriver if args.driver == "airflow" else KedroDriver
    timeline: list[dict[str, Any]] = []
    server = client = None
    stop_watch = threading.Event()
    moves: list[tuple[float, str | None]] = []
    try:
        setup = {
            "generate": kedro(project, "generate-data", log=log),
            "train": kedro(project, "run", log=log),
        }
        driver = driver_cls(project, scratch, log)
        setup["first_job"] = driver.cycle()
        seen: set[Path] = set()
        first = latest_record(project, seen)
        print(
            f"setup: generate {setup['generate']:.0f} s, kedro run {setup['train']:.0f} s, "
            f"first job {setup['first_job']:.0f} s ({(first or {}).get('status')}, champion "
            f"{(first or {}).get('champion_after')}); alerts {webhook_events(webhook)}",
            flush=True,
        )
        alerts_before = len(webhook_events(webhook))
        server, url = start_server(project, scratch / "server.log")
        client = Client(url, busiest_points(project), args.interval)
        client.start()
        threading.Thread(
            target=_alias_watch, args=(project, moves, stop_watch), daemon=True
        ).start()
        for week in range(args.weeks):
            scale = args.shift if week + 1 == args.shift_week else 1.0
            land_synthetic_batch(project, week, scale)
            wall = driver.cycle()
            time.sleep(2 * args.interval + 3)  # the server's next poll of the counts state
            events = webhook_events(webhook)
            row = week_row(
                week,
                scale=scale,
                project=project,
                record=latest_record(project, seen),
                alerts=events[alerts_before:],
                wall=wall,
            )
            alerts_before = len(events)
            timeline.append(row)
            print(_line(row), flush=True)
        alerts = {
            "webhook": dict(Counter(webhook_events(webhook))),
            "sns": dict(Counter(sns.events())),
        }
    finally:
        stop_watch.set()
        if client is not None:
            client.stop()
        if server is not None:
            stop_process_group(server, timeout=20)
        sns.stop()
        webhook.close()
    samples = client.samples if client else []
    promotions = [(at, v) for at, v in moves[1:] if v is not None]
    worker = scratch / "airflow_home"
    stray = (
        sorted(p.name for p in worker.iterdir() if p.name in ("mlflow.db", "mlruns", "data"))
        if worker.exists()
        else []
    )
    return {
        "weeks": timeline,
        "serving": serving_timeline(samples, promotions),
        "nowcast_by_counts_end": nowcast_by_week(samples),
        "alerts": alerts,
        "registries_outside_the_project": stray,
        "registry": registry(project),
        "setup_s": setup,
    }


def _line(row: dict[str, Any]) -> str:
    shown = "; ".join(str(r)[:70] for r in row["reasons"]) or "-"
    level = row["level"]
    measured = (
        f"level {level['actual_total']:.0f} vs {level['expected_total']:.0f} expected"
        f" ({level['relative_change']:+.0%}, p {level['p_value']:.3f})"
        if level.get("actual_total") is not None
        else "level -"
    )
    return (
        f"week {row['week'] + 1} x{row['scale']:.1f}: batch {row['batch_rows_clean']} clean rows;"
        f" {measured}; retrain recommended {row['retrain_recommended']} ({shown}); job"
        f" {row['job_status']}"
        f" (champion {row['champion_before']} -> {row['champion_after']}); alerts"
        f" {row['alerts'] or '-'}; {row['driver_wall_s']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--shift-week", type=int, default=4, help="1-based week scaled by --shift")
    parser.add_argument("--shift", type=float, default=1.3)
    parser.add_argument("--driver", choices=("airflow", "kedro"), default="airflow")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between requests")
    parser.add_argument("--toy", action="store_true", help="a small city (the suite's run)")
    parser.add_argument("--keep", type=Path, help="keep the scratch folder here")
    parser.add_argument("--json", type=Path, help="where to write what the soak saw")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="geo-busyness-soak-") as tmp:
        scratch = args.keep or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        result = soak(args, scratch)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["load_average"] = os.getloadavg()
    serving = result["serving"]
    print(
        f"server: {serving['requests']} requests, {serving['failed']} failed; new champion"
        f" answering after {[s['seconds'] and round(s['seconds'], 1) for s in serving['swaps']]} s"
    )
    print("nowcast (sum over the busiest cells) for the hour after each counts end:")
    for row in result["nowcast_by_counts_end"]:
        print(f"  counts end {row['counts_end']}  model v{row['version']}  {row['total']:.2f}")
    print(f"alerts: webhook {result['alerts']['webhook']}; SNS {result['alerts']['sns']}")
    print(
        f"registry: {result['registry']}; registries outside the project:"
        f" {result['registries_outside_the_project'] or 'none'}; wall {result['wall_s']:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
