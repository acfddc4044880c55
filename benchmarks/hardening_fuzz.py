"""Fuzz and load the project's model server the way issue #15 did (loopback only, bounded).

    .venv/bin/python benchmarks/hardening_fuzz.py            # ~1-2 minutes on 2 cores
    .venv/bin/python benchmarks/hardening_fuzz.py --quick    # smaller counts

Serves a small real model (the serving tests' fixture: BusynessFeatures + HistGradientBoosting
on synthetic events) with ``python -m geo_busyness.serving`` on a free 127.0.0.1 port, then:

1. sends a deterministic corpus of ~600 malformed requests and prints the status counts
   (the goal: only 4xx, never 5xx, and the server still answers /ping);
2. runs 7 valid clients beside 1 client sending bad requests and prints the valid clients'
   success (every answer 200 is the goal);
3. holds 300 stalled connections (half stalled in the body, half in the headers) and prints
   /ping p50/p99 under them, then how many the server closed after its deadlines;
4. posts a ~136 KiB body of rows with distinct keys and prints the server's peak RSS before and
   after (VmHWM).

Every loop is bounded in count and time; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' model fixture

from tests.serving.model_fixture import fit_model, save_model  # noqa: E402

from geo_busyness.testing import running_server  # noqa: E402

TS, LAT, LON = "courier_location_timestamp", "courier_lat", "courier_lon"
GOOD = {TS: "2026-01-26T12:30:00Z", LAT: 50.45, LON: -104.6}
JSON, CSV = "application/json", "text/csv"


def malformed_corpus(size: int, seed: int = 15) -> list[tuple[bytes, str, dict[str, str]]]:
    """(body, content type, extra headers) of requests a careless or hostile client sends."""
    rng = random.Random(seed)
    odd_values = [
        1772452800000,
        -1e300,
        1e300,
        float("inf"),
        [1, 2],
        {"a": 1},
        True,
        None,
        "",
        "yesterday",
        "9999-12-31T23:00:00Z",
        "0001-01-01T00:00:00Z",
        "2262-04-12T00:00:00Z",
        "1600-01-01T00:00:00Z",
        "2300-01-01T00:00:00Z",
        "2026-02-30T12:00:00Z",
        "2026-01-05T25:00:00",
        "\u0000",
        "\ud7ff" * 50,
        "1e3",
        2**70,
        -(2**63),
        "NaN",
        [[[]]],
    ]
    fixed: list[tuple[bytes, str, dict[str, str]]] = [
        (b"", JSON, {}),
        (b"   ", JSON, {}),
        (b"[", JSON, {}),
        (b"{}", JSON, {}),
        (b"[]", JSON, {}),
        (b'{"instances": {}}', JSON, {}),
        (b"null", JSON, {}),
        (b"[1, 2, 3]", JSON, {}),
        (b"[" * 5000 + b"]" * 5000, JSON, {}),
        (b'[{"courier_lat": NaN}]', JSON, {}),
        (orjson.dumps([GOOD]), "application/xml", {}),
        (orjson.dumps([GOOD]), JSON, {"Accept": "image/png"}),
        (b"courier_lat\n1\n", CSV, {}),
        (b"a,b\n1,2,3,4\n", CSV, {}),
        (b"\xff\xfe\x00garbage", CSV, {}),
        (b"courier_location_timestamp,courier_lat,courier_lon\n\xe9,1,2\n", CSV, {}),
        (b'"unclosed,quote\n', CSV, {}),
    ]
    corpus = list(fixed)
    while len(corpus) < size:
        kind = rng.randrange(6)
        if kind == 0:  # random bytes
            corpus.append((rng.randbytes(rng.randrange(1, 300)), rng.choice([JSON, CSV]), {}))
        elif kind == 1:  # a good batch with one odd value somewhere
            rows = [dict(GOOD) for _ in range(rng.randrange(1, 12))]
            rows[rng.randrange(len(rows))][rng.choice([TS, LAT, LON])] = rng.choice(odd_values)
            # stdlib json: big integers and Infinity/NaN tokens, as careless clients send them
            corpus.append((json.dumps(rows).encode(), JSON, {}))
        elif kind == 2:  # a truncated good body
            body = orjson.dumps([GOOD] * rng.randrange(1, 5))
            corpus.append((body[: rng.randrange(1, len(body))], JSON, {}))
        elif kind == 3:  # missing or renamed fields
            row = {k: v for k, v in GOOD.items() if rng.random() < 0.6}
            row[rng.choice(["lat", "lon", "time", "Courier_Lat"])] = 1
            corpus.append((orjson.dumps([row]), JSON, {}))
        elif kind == 4:  # CSV with an odd value
            value = str(rng.choice(odd_values)).replace("\n", " ")
            body = f"{TS},{LAT},{LON}\n{value},50.45,-104.6\n".encode("utf-8", "replace")
            corpus.append((body, CSV, {}))
        else:  # a lying Content-Length
            body = orjson.dumps([GOOD])
            corpus.append(
                (body, JSON, {"Content-Length": rng.choice(["abc", "-5", "99999999999"])})
            )
    return corpus[:size]


def post(host: str, port: int, body: bytes, content_type: str, headers: dict[str, str]) -> int:
    """The status of one POST /invocations on a fresh connection (0 if the connection failed)."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.putrequest("POST", "/invocations", skip_accept_encoding=True)
        connection.putheader("Content-Type", content_type)
        for name, value in headers.items():
            connection.putheader(name, value)
        if "Content-Length" not in headers:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body if "Content-Length" not in headers else None)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


def ping_latencies(url: str, count: int) -> tuple[list[float], collections.Counter]:
    host, port = url.removeprefix("http://").split(":")
    latencies, statuses = [], collections.Counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(count):
        started = time.perf_counter()
        try:
            connection.request("GET", "/ping")
            answer = connection.getresponse()
            answer.read()
            statuses[answer.status] += 1
        except (OSError, http.client.HTTPException):
            statuses[0] += 1
            connection.close()
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies, statuses


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_pid(port: int) -> int | None:
    """The pid of the serving process listening on ``port`` (from its command line)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"geo_busyness.serving" in command and str(port).encode() in command:
            return int(entry.name)
    return None


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:  # noqa: PLR0915 - one bounded scenario after another
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    n_malformed = 200 if args.quick else 600
    per_client = 60 if args.quick else 200
    stalled = 300

    with tempfile.TemporaryDirectory(prefix="geo-busyness-fuzz-") as tmp:
        model_dir = save_model(fit_model(), Path(tmp) / "model")
        log = Path(tmp) / "server.log"
        with running_server(
            model_dir, "--body-timeout", "5", "--header-timeout", "5", log=log
        ) as url:
            host, port_text = url.removeprefix("http://").split(":")
            port = int(port_text)
            pid = server_pid(port)

            # 1. the malformed corpus
            statuses = collections.Counter(
                post(host, port, *request) for request in malformed_corpus(n_malformed)
            )
            print(
                f"1. malformed corpus ({n_malformed} requests): status counts {dict(sorted(statuses.items()))}"
            )
            print(
                f"   5xx: {sum(n for s, n in statuses.items() if s >= 500)}; /ping after: "
                f"{ping_latencies(url, 1)[1].most_common(1)[0][0]}"
            )

            # 2. valid clients beside one bad client
            bad_body = orjson.dumps([GOOD, {**GOOD, TS: 1772452800000}])
            good_body = orjson.dumps([GOOD])
            results: dict[str, collections.Counter] = {
                "valid": collections.Counter(),
                "bad": collections.Counter(),
            }
            lock = threading.Lock()
            deadline = time.monotonic() + 120

            def client(kind: str, body: bytes) -> None:
                for _ in range(per_client):
                    if time.monotonic() > deadline:
                        return
                    status = post(host, port, body, JSON, {})
                    with lock:
                        results[kind][status] += 1

            threads = [threading.Thread(target=client, args=("valid", good_body)) for _ in range(7)]
            threads.append(threading.Thread(target=client, args=("bad", bad_body)))
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            valid = results["valid"]
            print(
                f"2. 7 valid clients + 1 bad client, {per_client} requests each, {elapsed:.1f} s:"
                f" valid {valid[200]}/{sum(valid.values())} answered 200 {dict(valid)};"
                f" bad client {dict(results['bad'])}"
            )

            # 3. /ping under stalled connections
            socks = []
            for index in range(stalled):
                sock = socket.create_connection((host, port), timeout=5)
                if index % 2:
                    sock.sendall(
                        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                        b"Content-Type: application/json\r\n\r\n[{"
                    )
                else:
                    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
                socks.append(sock)
            latencies, ping_statuses = ping_latencies(url, 200)
            print(
                f"3. /ping under {stalled} stalled connections: p50 {percentile(latencies, 0.5) * 1000:.1f} ms,"
                f" p99 {percentile(latencies, 0.99) * 1000:.1f} ms, statuses {dict(ping_statuses)}"
            )
            time.sleep(6.5)  # past the 5 s header and body deadlines
            still_open = 0
            for sock in socks:
                sock.settimeout(0.2)
                try:
                    while sock.recv(4096):
                        pass
                except TimeoutError:
                    still_open += 1
                except OSError:
                    pass
                sock.close()
            print(
                f"   after the deadlines: {stalled - still_open} closed by the server, {still_open} still open"
            )

            # 4. peak RSS for the distinct-keys body
            rows, size = [], 0
            while size < 136 * 1024:
                row = {**GOOD, f"k{len(rows)}": len(rows)}
                rows.append(row)
                size += len(orjson.dumps(row)) + 1
            body = orjson.dumps(rows)
            before = peak_rss_mb(pid) if pid else float("nan")
            status = post(host, port, body, JSON, {})
            after = peak_rss_mb(pid) if pid else float("nan")
            print(
                f"4. distinct-keys body ({len(body) / 1024:.0f} KiB, {len(rows)} rows): status {status},"
                f" server peak RSS {before:.0f} MB -> {after:.0f} MB (+{after - before:.0f} MB)"
            )
            print(f"   server log: {log.stat().st_size / 1024:.1f} KiB in all")


if __name__ == "__main__":
    main()
