"""Fuzz and attack the project's model server the way issues #15 and #23 did (loopback only).

    .venv/bin/python benchmarks/hardening_fuzz.py            # ~3 minutes on 2 cores
    .venv/bin/python benchmarks/hardening_fuzz.py --quick    # smaller counts in parts 1-2
    .venv/bin/python benchmarks/hardening_fuzz.py --toy      # the suite's size (~40 s)
    .venv/bin/python benchmarks/hardening_fuzz.py --toy --round-seconds 3   # part 5 shorter

Serves a small real model (the serving tests' fixture: BusynessFeatures + HistGradientBoosting
on synthetic events) with ``python -m geo_busyness.serving`` on a free 127.0.0.1 port, then:

1. sends a deterministic corpus of ~600 malformed requests and prints the status counts
   (the goal: only 4xx, never 5xx, and the server still answers /ping);
2. runs 7 valid clients beside 1 client sending bad requests and prints the valid clients'
   success (every answer 200 is the goal);
3. holds 300 stalled connections (half stalled in the body, half in the headers) and prints
   /ping p50/p99 under them, then how many the server closed after its deadlines;
4. posts a ~136 KiB body of rows with distinct keys and prints the server's peak RSS before and
   after (VmHWM);
5. replays each attack of issue #23 beside valid clients (single-row JSON queries, 4 for an
   hour of the served week, the lookup path, and 1 for a past hour, the prediction thread's
   path), after a baseline round without attack: CSV headers of 700,000 columns, 300
   connections announcing a body and sending none, 48 clients asking for ~6 MB answers and
   never reading them. Per attack and kind of valid client: p50/p99 and the 5xx count; the
   server's RSS before, at its peak and after (at the round's end, the attackers still
   connected). The goals: 0 x 5xx, p99 < 50 ms, RSS bounded.

The server's header, body and answer deadlines are 5 s (2 s at toy size). ``--json PATH``
also writes the figures. Every loop is bounded in count and time; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import random
import selectors
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' model fixture

from benchmarks.fuzz_artifacts import silent_endpoints_part, tampered_artifacts_part  # noqa: E402
from tests.serving.model_fixture import fit_model, save_model  # noqa: E402

from geo_busyness.testing import running_server  # noqa: E402

#: Read by the server (``serving/protocol.py``); set here so an older server just ignores it.
ENV_SEND_TIMEOUT = "GEO_BUSYNESS_SEND_TIMEOUT"
TCP_ESTABLISHED = 1  # linux/tcp_states.h
TS, LAT, LON = "courier_location_timestamp", "courier_lat", "courier_lon"
GOOD = {TS: "2026-01-26T12:30:00Z", LAT: 50.45, LON: -104.6}
#: The same point in an hour of the week the model serves (from its origin, 2026-02-02).
LOOKUP_ROW = {**GOOD, TS: "2026-02-03T12:30:00Z"}
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


def post(
    host: str,
    port: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    *,
    timeout: float = 30,
) -> int:
    """The status of one POST /invocations on a fresh connection (0 if the connection failed)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
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
    """The process's peak resident set so far (VmHWM), in MB."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """The process's resident set now (VmRSS), in MB."""
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True)
class Scale:
    """The sizes of one run: the issue's figures (full), smaller counts (quick), the suite's."""

    malformed: int
    per_client: int
    stalled: int
    #: The server's header, body and answer deadlines (s).
    deadline_s: float
    wide_columns: int
    slow_bodies: int
    non_readers: int
    #: Query rows whose JSON answer is the attack's answer size (~149 bytes a row).
    answer_rows: int
    #: How long each attack runs beside the valid clients (s).
    round_s: float
    valid_clients: int


FULL = Scale(600, 200, 300, 5.0, 700_000, 300, 48, 42_000, 20.0, 4)
QUICK = replace(FULL, malformed=200, per_client=60)
TOY = Scale(40, 10, 30, 2.0, 70_000, 30, 4, 7_000, 5.0, 2)


# ---------------------------------------------------------------- parts 1-4 (issue #15)
def malformed_part(host: str, port: int, url: str, scale: Scale) -> dict[str, Any]:
    """1. The malformed corpus: status counts (only 4xx is the goal)."""
    statuses = collections.Counter(
        post(host, port, *request) for request in malformed_corpus(scale.malformed)
    )
    fives = sum(n for s, n in statuses.items() if s >= 500)
    after = ping_latencies(url, 1)[1].most_common(1)[0][0]
    print(
        f"1. malformed corpus ({scale.malformed} requests): status counts"
        f" {dict(sorted(statuses.items()))}\n   5xx: {fives}; /ping after: {after}"
    )
    return {"statuses": dict(statuses), "5xx": fives, "ping_after": after}


def bad_neighbour_part(host: str, port: int, scale: Scale) -> dict[str, Any]:
    """2. Seven valid clients beside one sending bad requests (every valid answer 200)."""
    bad_body = orjson.dumps([GOOD, {**GOOD, TS: 1772452800000}])
    good_body = orjson.dumps([GOOD])
    results = {"valid": collections.Counter(), "bad": collections.Counter()}
    lock = threading.Lock()
    deadline = time.monotonic() + 120

    def client(kind: str, body: bytes) -> None:
        for _ in range(scale.per_client):
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
    valid = results["valid"]
    print(
        f"2. 7 valid clients + 1 bad client, {scale.per_client} requests each,"
        f" {time.perf_counter() - started:.1f} s: valid {valid[200]}/{sum(valid.values())}"
        f" answered 200 {dict(valid)}; bad client {dict(results['bad'])}"
    )
    return {"valid": dict(valid), "bad": dict(results["bad"])}


def stalled_part(host: str, port: int, url: str, scale: Scale) -> dict[str, Any]:
    """3. /ping under stalled connections (half in the body, half in the headers), then how
    many the server closed after its deadlines."""
    socks = []
    for index in range(scale.stalled):
        sock = socket.create_connection((host, port), timeout=5)
        if index % 2:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                b"Content-Type: application/json\r\n\r\n[{"
            )
        else:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    latencies, statuses = ping_latencies(url, 200)
    print(
        f"3. /ping under {scale.stalled} stalled connections: p50"
        f" {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f}"
        f" ms, statuses {dict(statuses)}"
    )
    time.sleep(scale.deadline_s + 1.5)  # past the header and body deadlines
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
        f"   after the deadlines: {scale.stalled - still_open} closed by the server,"
        f" {still_open} still open"
    )
    return {"ping_statuses": dict(statuses), "still_open": still_open}


def distinct_keys_part(host: str, port: int, pid: int | None) -> dict[str, Any]:
    """4. Peak RSS for a ~136 KiB body of rows with distinct keys."""
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
    return {"status": status, "peak_before_mb": before, "peak_after_mb": after}


# ---------------------------------------------------------------- 5. attacks (issue #23)
Attack = Callable[[str, int, Scale, threading.Event], str]


def wide_csv_attack(host: str, port: int, scale: Scale, stop: threading.Event) -> str:
    """CSV bodies whose header has ``wide_columns`` columns and no data rows, one after another."""
    body = ",".join(f"c{index}" for index in range(scale.wide_columns)).encode() + b"\n"
    statuses, seconds = collections.Counter(), []
    while not stop.is_set():
        started = time.perf_counter()
        statuses[post(host, port, body, CSV, {}, timeout=180)] += 1
        seconds.append(time.perf_counter() - started)
    return (
        f"{sum(statuses.values())} x {len(body) / 1e6:.1f} MB header of {scale.wide_columns:,}"
        f" columns: {dict(statuses)}, answered in p50 {percentile(seconds, 0.5) * 1000:.0f} ms"
    )


def slow_bodies_attack(host: str, port: int, scale: Scale, stop: threading.Event) -> str:
    """``slow_bodies`` connections that announce a 100,000-byte body and send none; each one
    the server cuts is opened again (the attack renews itself)."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    selector = selectors.DefaultSelector()

    def open_one() -> None:
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(head)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    for _ in range(scale.slow_bodies):
        open_one()
    cut = 0
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.1):
            selector.unregister(key.fileobj)
            key.fileobj.close()  # the server answered (408/503) or closed: cut
            cut += 1
            with contextlib.suppress(OSError):
                open_one()
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    return f"{scale.slow_bodies} held, renewed when cut: {cut} cut by the server"


def answer_body(rows: int) -> bytes:
    """A CSV request of ``rows`` plain query rows in the model's week (its answer ~149 B/row)."""
    hours = pd.date_range("2026-02-02", periods=168, freq="h").strftime("%Y-%m-%dT%H:%M:00Z")
    index = np.arange(rows)
    frame = pd.DataFrame(
        {
            TS: np.asarray(hours)[index % 168],
            LAT: 50.45 + (index % 7) * 0.002,
            LON: -104.6 - (index % 5) * 0.003,
        }
    )
    return frame.to_csv(index=False).encode()


def tcp_established(sock: socket.socket) -> bool:
    """Whether the kernel still has the connection established (read without reading)."""
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    return state == TCP_ESTABLISHED


def non_reading_attack(host: str, port: int, scale: Scale, stop: threading.Event) -> str:
    """``non_readers`` clients that each ask for a ~6 MB answer and never read a byte of it."""
    body = answer_body(scale.answer_rows)
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    socks = []
    for _ in range(scale.non_readers):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # takes (almost) nothing
        sock.settimeout(30)
        try:
            sock.connect((host, port))
            sock.sendall(request)
        except OSError:
            sock.close()
            continue
        socks.append(sock)
        if stop.is_set():
            break
    stop.wait()
    cut = sum(not tcp_established(sock) for sock in socks)
    for sock in socks:
        sock.close()
    answer_mb = scale.answer_rows * 149 / 1e6
    return f"{len(socks)} x ~{answer_mb:.1f} MB answers never read: {cut} cut by the server"


def no_attack(host: str, port: int, scale: Scale, stop: threading.Event) -> str:
    """Nothing: the valid clients' figures on their own, to compare the attacks with."""
    stop.wait()
    return "valid clients alone"


ATTACKS: dict[str, Attack] = {
    "none (baseline)": no_attack,
    "wide CSV": wide_csv_attack,
    "slow bodies": slow_bodies_attack,
    "non-reading clients": non_reading_attack,
}


class RssSampler(threading.Thread):
    """The server's resident set every 50 ms; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, rss_mb(pid), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pid))


def valid_client(
    host: str, port: int, body: bytes, stop: threading.Event, seen: list[tuple[int, float]]
) -> None:
    """One valid query after another (a fresh connection each, 20 ms apart)."""
    while not stop.is_set():
        started = time.perf_counter()
        status = post(host, port, body, JSON, {}, timeout=30)
        seen.append((status, time.perf_counter() - started))
        stop.wait(0.02)


def summary(seen: list[tuple[int, float]]) -> dict[str, Any]:
    """Count, p50/p99 (ms), 5xx and other non-200 answers of one kind of valid client."""
    statuses = collections.Counter(status for status, _ in seen)
    seconds = [elapsed for _, elapsed in seen]
    return {
        "n": len(seen),
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1) if seen else None,
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1) if seen else None,
        "5xx": sum(n for status, n in statuses.items() if status >= 500),
        "non_200": sum(n for status, n in statuses.items() if status != 200),
        "statuses": dict(statuses),
    }


def attack_round(
    name: str, attack: Attack, host: str, port: int, *, pid: int, scale: Scale
) -> dict:
    """``attack`` beside ``valid_clients`` clients asking for an hour of the served week (the
    lookup path) and one asking for a past hour (the prediction thread's path): per kind,
    p50/p99 and statuses; the server's RSS before, peak and after (at the round's end, the
    attackers still connected)."""
    before, sampler = rss_mb(pid), RssSampler(pid)
    sampler.start()
    stop_attack, stop_valid = threading.Event(), threading.Event()
    note: dict[str, str] = {}
    attacker = threading.Thread(
        target=lambda: note.update(text=attack(host, port, scale, stop_attack)), daemon=True
    )
    attacker.start()
    time.sleep(min(1.0, scale.round_s / 5))  # the attack takes hold first
    lookup: list[tuple[int, float]] = []
    worker: list[tuple[int, float]] = []
    kinds = [(orjson.dumps([LOOKUP_ROW]), lookup)] * scale.valid_clients
    kinds.append((orjson.dumps([GOOD]), worker))
    clients = [
        threading.Thread(target=valid_client, args=(host, port, body, stop_valid, seen))
        for body, seen in kinds
    ]
    for client in clients:
        client.start()
    time.sleep(scale.round_s)
    stop_valid.set()
    for client in clients:
        client.join()
    after = rss_mb(pid)
    stop_attack.set()
    attacker.join(timeout=300)
    sampler.done.set()
    sampler.join()
    valid, past = summary(lookup), summary(worker)
    return {
        "attack": name,
        "valid": valid,
        "valid_past_hour": past,
        "valid_requests": valid["n"] + past["n"],
        "valid_5xx": valid["5xx"] + past["5xx"],
        "rss_before_mb": round(before),
        "rss_peak_mb": round(max(sampler.peak, after)),
        "rss_after_mb": round(after),
        "note": note.get("text", "the attack did not finish"),
    }


def print_rounds(rounds: list[dict]) -> None:
    print(
        "5. attacks beside valid clients (single-row JSON, a fresh connection each): 'week' ="
        " an hour of the served week (the lookup path), 'past' = a past hour (the prediction"
        " thread)"
    )
    print(
        f"   {'attack':<20} {'week n':>6} {'p50 ms':>7} {'p99 ms':>7} {'5xx':>4} {'past n':>6}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'5xx':>4}  RSS MB before/peak/after"
    )
    for row in rounds:
        week, past = row["valid"], row["valid_past_hour"]
        print(
            f"   {row['attack']:<20} {week['n']:>6} {week['p50_ms']!s:>7} {week['p99_ms']!s:>7}"
            f" {week['5xx']:>4} {past['n']:>6} {past['p50_ms']!s:>7} {past['p99_ms']!s:>7}"
            f" {past['5xx']:>4}  {row['rss_before_mb']}/{row['rss_peak_mb']}/{row['rss_after_mb']}"
        )
        print(f"   {'':<20} {row['note']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller counts")
    size.add_argument("--toy", action="store_true", help="the test suite's size (~40 s)")
    parser.add_argument("--attacks-only", action="store_true", help="only part 5")
    parser.add_argument(
        "--round-seconds",
        type=float,
        help="how long each attack of part 5 runs beside the valid clients (default: the size's)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    scale = TOY if args.toy else QUICK if args.quick else FULL
    if args.round_seconds is not None:
        if not args.round_seconds > 0:
            parser.error(f"--round-seconds {args.round_seconds}: expected a positive number")
        scale = replace(scale, round_s=args.round_seconds)
    deadline = str(scale.deadline_s)
    # The answer deadline through the environment: a server without one ignores it.
    os.environ[ENV_SEND_TIMEOUT] = deadline
    figures: dict[str, Any] = {"scale": asdict(scale), "load_before": os.getloadavg()}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory(prefix="geo-busyness-fuzz-") as tmp:
        model_dir = save_model(fit_model(), Path(tmp) / "model")
        log = Path(tmp) / "server.log"
        extra = ("--body-timeout", deadline, "--header-timeout", deadline)
        with running_server(model_dir, *extra, log=log) as url:
            host, port_text = url.removeprefix("http://").split(":")
            port = int(port_text)
            pid = server_pid(port)
            if not args.attacks_only:
                figures["malformed"] = malformed_part(host, port, url, scale)
                figures["bad_neighbour"] = bad_neighbour_part(host, port, scale)
                figures["stalled"] = stalled_part(host, port, url, scale)
                figures["distinct_keys"] = distinct_keys_part(host, port, pid)
            if pid is None:
                raise SystemExit("Cannot find the server's process for its RSS.")
            figures["attacks"] = [
                attack_round(name, attack, host, port, pid=pid, scale=scale)
                for name, attack in ATTACKS.items()
            ]
            print_rounds(figures["attacks"])
            print(f"   server log: {log.stat().st_size / 1024:.1f} KiB in all")
        if not args.attacks_only:
            (Path(tmp) / "artifacts").mkdir()
            figures["tampered_artifacts"] = tampered_artifacts_part(Path(tmp) / "artifacts")
            figures["silent_endpoints"] = silent_endpoints_part()
    figures["load_after"] = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
