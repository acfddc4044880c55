"""Issue #23 item 2: hostile clients against the real server (a subprocess, real sockets).

A wide CSV is refused in milliseconds without memory; clients that announce a body and send
none never take the slots of valid ones and are cut at the body deadline; a client that does
not read its answer is cut at the send deadline; /ping says 503 while no invocation slot is
free; headers have a size bound as well as a deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from geo_busyness.serving.protocol import ENV_SEND_TIMEOUT, Limits
from geo_busyness.testing import running_server
from tests.serving.cases import GOOD_ROW

DEADLINE = 2.0  # the server's header, body and send deadlines here (s)
TCP_ESTABLISHED = 1  # linux/tcp_states.h
CSV_HEADER = b"courier_location_timestamp,courier_lat,courier_lon\n"
#: ~42,000 rows: a 1.4 MB CSV request whose JSON answer is ~6 MB.
BIG_REQUEST = CSV_HEADER + b"2026-01-05T12:30:00Z,50.45,-104.6\n" * 42_000


@pytest.fixture(scope="module")
def server(unpacked_package, tmp_path_factory) -> str:
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    deadlines = ("--header-timeout", "--body-timeout", "--send-timeout")
    extra = [part for flag in deadlines for part in (flag, str(DEADLINE))]
    with running_server(unpacked_package, *extra, log=log) as url:
        yield url


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _server_rss_mb(port: int) -> float:
    """The resident set of the server process listening on ``port`` (from /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"geo_busyness.serving" in command and str(port).encode() in command:
            status = (entry / "status").read_text().splitlines()
            rss = next(line for line in status if line.startswith("VmRSS:"))
            return int(rss.split()[1]) / 1024
    raise LookupError(f"no server process on port {port}")


def _valid(url: str) -> int:
    return httpx.post(f"{url}/invocations", json=[GOOD_ROW], timeout=10).status_code


def _established(sock: socket.socket) -> bool:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_ESTABLISHED


def _everything(sock: socket.socket, timeout: float) -> bytes:
    """What the server sent until it closed (or ``timeout`` passed)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


@pytest.mark.slow
def test_a_wide_csv_header_is_refused_at_once_without_memory(server):
    """700,000 columns (5.5 MB, no rows) held the prediction thread 50 s and took +2 GB."""
    _, port = _address(server)
    header = ",".join(f"c{index}" for index in range(700_000)).encode() + b"\n"
    before = _server_rss_mb(port)
    started = time.perf_counter()
    answer = httpx.post(
        f"{server}/invocations", content=header, headers={"content-type": "text/csv"}, timeout=120
    )
    elapsed = time.perf_counter() - started
    assert answer.status_code == 400
    assert "700,000 columns; at most 256" in answer.json()["error"]
    assert elapsed < 3, f"{elapsed:.1f} s for the refusal"
    assert _server_rss_mb(port) - before < 100
    started = time.perf_counter()
    assert _valid(server) == 200
    assert time.perf_counter() - started < 1


@pytest.mark.slow
def test_bodyless_clients_are_cut_and_valid_requests_answered_meanwhile(server):
    """300 connections announcing 100,000 bytes and sending none took every invocation slot:
    valid requests got 503 until the body deadline, renewable."""
    host, port = _address(server)
    stalled = []
    for _ in range(300):
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        stalled.append(sock)
    try:
        time.sleep(0.2)  # every stalled request is in the server
        assert [_valid(server) for _ in range(20)] == [200] * 20
        time.sleep(DEADLINE + 1)
        answers = [_everything(sock, timeout=1) for sock in stalled]
        assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers)
        assert b"did not arrive within 2 s" in answers[0]
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.slow
def test_a_client_that_does_not_read_its_answer_is_cut_at_the_send_deadline(server):
    """A client never reading a 6 MB answer kept it (and the connection) for good."""
    host, port = _address(server)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    try:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            + f"Content-Length: {len(BIG_REQUEST)}\r\n\r\n".encode()
            + BIG_REQUEST
        )
        deadline = time.monotonic() + DEADLINE + 15  # the prediction, then the send deadline
        while _established(sock) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _established(sock), "the connection is still open"
        assert _valid(server) == 200
    finally:
        sock.close()


@pytest.mark.slow
def test_headers_over_their_bound_are_refused_before_the_deadline(server):
    host, port = _address(server)
    with socket.create_connection((host, port), timeout=5) as sock:
        started = time.perf_counter()
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000)
        answer = _everything(sock, timeout=DEADLINE + 2)
        assert time.perf_counter() - started < DEADLINE / 2
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431")  # or a reset
    assert _valid(server) == 200


@pytest.fixture(scope="module")
def small_server(unpacked_package, tmp_path_factory) -> str:
    """A server with one invocation slot and room for 10 bodies arriving."""
    log = tmp_path_factory.mktemp("small") / "server.log"
    extra = ("--max-concurrency", "1", "--max-waiting-bodies", "10", "--body-timeout", "30")
    with running_server(unpacked_package, *extra, log=log) as url:
        yield url


@pytest.mark.slow
def test_past_the_body_bound_the_longest_waiting_bodies_are_refused(small_server):
    host, port = _address(small_server)
    stalled = []
    for _ in range(15):
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        stalled.append(sock)
        time.sleep(0.02)  # arrive in this order
    try:
        answers = [_everything(sock, timeout=0.5) for sock in stalled]
        assert all(answer.startswith(b"HTTP/1.1 503") for answer in answers[:5])
        assert b"Too many requests are sending their bodies" in answers[0]
        assert answers[5:] == [b""] * 10  # still waiting for their bodies
        assert _valid(small_server) == 200
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.slow
def test_ping_is_503_with_a_reason_while_every_invocation_slot_is_taken(small_server):
    url = small_server
    done = threading.Event()
    pings: list[httpx.Response] = []

    def busy_client() -> None:
        with httpx.Client(timeout=60) as client:
            for _ in range(20):
                client.post(
                    f"{url}/invocations", content=BIG_REQUEST, headers={"content-type": "text/csv"}
                )
                if done.is_set():
                    return
        done.set()

    worker = threading.Thread(target=busy_client)
    worker.start()
    with httpx.Client(timeout=10) as client:
        while not done.is_set():
            pings.append(client.get(f"{url}/ping"))
            if pings[-1].status_code == 503:
                done.set()
            time.sleep(0.005)
    worker.join()
    busy = [ping for ping in pings if ping.status_code == 503]
    assert busy, f"/ping never said busy in {len(pings)} pings"
    assert busy[0].json()["status"] == "busy"
    assert "All 1 invocation slots are taken" in busy[0].json()["error"]
    assert httpx.get(f"{url}/ping").status_code == 200


@pytest.mark.parametrize("value", ["soon", "-1", "0"])
def test_limits_name_the_variable_and_what_is_expected(monkeypatch, value):
    monkeypatch.setenv(ENV_SEND_TIMEOUT, value)
    with pytest.raises(ValueError, match=f"{ENV_SEND_TIMEOUT}='{value}': expected a positive"):
        Limits.from_env()
