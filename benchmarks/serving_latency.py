"""Latency and throughput of the project's model server on this machine (localhost only).

    .venv/bin/python benchmarks/serving_latency.py                       # the registry's challenger
    .venv/bin/python benchmarks/serving_latency.py --model data/06_models/deployment/packages/geo-busyness-v1/model.tar.gz
    .venv/bin/python benchmarks/serving_latency.py --workers 2 --duration 10

Packages the model as the deployment pipeline does (model.tar.gz, unpacked like SageMaker),
starts ``python -m geo_busyness.serving`` on a free port and measures, with keep-alive clients:
single-row and 1000-row request latency (p50/p99, sequential) and requests per second of
single-row requests under 8 concurrent clients. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

from geo_busyness.serving.threads import single_threaded_math  # noqa: E402

single_threaded_math()  # the in-process breakdown runs like a server worker

from geo_busyness.model.loading import fetch_model, load_model  # noqa: E402
from geo_busyness.model.predict import predict_busyness  # noqa: E402
from geo_busyness.pipelines.deployment.packaging import build_package, unpack_package  # noqa: E402
from geo_busyness.serving.requests import parse_request  # noqa: E402
from geo_busyness.serving.responses import encode_predictions  # noqa: E402
from geo_busyness.testing import running_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def prepare_model(location: str, workdir: Path) -> Path:
    """An unpacked model.tar.gz for ``location`` (tarball, model dir or MLflow URI)."""
    if location.endswith(".tar.gz"):
        return unpack_package(location, workdir / "model")
    if not Path(location).exists():
        import mlflow  # noqa: PLC0415

        mlflow.set_tracking_uri(
            os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT}/mlflow.db")
        )
    model_dir = fetch_model(location, workdir / "download")
    package = build_package(model_dir, workdir / "model.tar.gz")
    return unpack_package(package["path"], workdir / "model")


def query_rows(model, n: int, seed: int = 0) -> list[dict]:
    """Realistic queries: points near the model's anchors, hours in the week after its data."""
    features = model.named_steps["features"]
    rng = np.random.default_rng(seed)
    anchors = np.asarray(features.anchors_)
    picks = anchors[rng.integers(0, len(anchors), n)]
    start = pd.Timestamp(features.history_end_)
    times = start + pd.to_timedelta(rng.integers(0, 7 * 24 * 60, n), unit="min")
    return [
        {
            "courier_location_timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "courier_lat": float(lat + rng.normal(0, 0.002)),
            "courier_lon": float(lon + rng.normal(0, 0.003)),
        }
        for t, (lat, lon) in zip(times, picks, strict=True)
    ]


def breakdown(model, body: bytes, repeats: int) -> dict[str, float]:
    """Median in-process ms of each stage of one invocation: parse, predict, encode."""
    stages: dict[str, list[float]] = {"parse_ms": [], "predict_ms": [], "encode_ms": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        queries = parse_request(body, "application/json")
        t1 = time.perf_counter()
        answers = predict_busyness(model, queries)
        t2 = time.perf_counter()
        encode_predictions(answers)
        t3 = time.perf_counter()
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            stages[name].append(seconds * 1000)
    return {name: float(np.median(values)) for name, values in stages.items()}


class Client:
    """One keep-alive HTTP connection posting JSON to /invocations."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def post(self, body: bytes) -> float:
        started = time.perf_counter()
        self.connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        answer = self.connection.getresponse()
        payload = answer.read()
        elapsed = time.perf_counter() - started
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {payload[:200]!r}")
        return elapsed


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def sequential(url: str, bodies: list[bytes], count: int, max_seconds: float) -> dict[str, float]:
    client = Client(url)
    for body in bodies[:5]:  # warm-up
        client.post(body)
    samples: list[float] = []
    deadline = time.monotonic() + max_seconds
    for i in range(count):
        samples.append(client.post(bodies[i % len(bodies)]))
        if time.monotonic() > deadline:
            break
    return percentiles(samples)


def concurrent(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    samples: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def work(index: int) -> None:
        client = Client(url)
        i = index
        while time.monotonic() < stop and len(samples[index]) < 100_000:
            samples[index].append(client.post(bodies[i % len(bodies)]))
            i += clients

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.perf_counter() - started
    flat = [s for per in samples for s in per]
    return {"clients": clients, "requests_per_s": len(flat) / elapsed, **percentiles(flat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/geo-busyness@challenger")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--single", type=int, default=1000, help="single-row requests")
    parser.add_argument("--batch", type=int, default=100, help="1000-row requests")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of concurrent load")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        model_dir = prepare_model(args.model, Path(tmp))
        model = load_model(model_dir)
        rows = query_rows(model, 5000)
        singles = [orjson.dumps([row]) for row in rows[:500]]
        batches = [orjson.dumps(rows[i : i + 1000]) for i in range(0, 5000, 1000)]
        in_process = {
            "single_row": breakdown(model, singles[0], 50),
            "batch_1000_rows": breakdown(model, batches[0], 20),
        }
        log = Path(tmp) / "server.log"
        with running_server(model_dir, "--workers", str(args.workers), log=log) as url:
            figures = {
                "model": args.model,
                "workers": args.workers,
                "cpus": os.cpu_count(),
                "single_row": sequential(url, singles, args.single, 60),
                "batch_1000_rows": sequential(url, batches, args.batch, 120),
                "concurrent_single_row": concurrent(url, singles, args.clients, args.duration),
                "in_process_median": in_process,
            }
    print(f"model {figures['model']}, {args.workers} server worker(s), {figures['cpus']} CPUs")
    for name in ("single_row", "batch_1000_rows", "concurrent_single_row"):
        result = figures[name]
        extra = (
            f", {result['requests_per_s']:.0f} req/s with {result['clients']} clients"
            if "requests_per_s" in result
            else ""
        )
        print(
            f"{name:>22}: p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms"
            f"  (n={result['n']}){extra}"
        )
    for name, stages in figures["in_process_median"].items():
        parts = "  ".join(f"{stage} {value:.2f}" for stage, value in stages.items())
        print(f"{'in-process ' + name:>22}: {parts}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
