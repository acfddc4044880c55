"""Issue #15 item 5: stalled clients never make /ping fail and never hold connections for good."""

from __future__ import annotations

import socket
import statistics
import time

import httpx
import pytest

from geo_busyness.testing import running_server

STALLED = 300


def _stalled_body(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n[{"
    )
    return sock


def _stalled_headers(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.5)
        data = sock.recv(4096)
    except TimeoutError:
        return False
    except OSError:
        return True
    while data:  # a 408 answer, then the close
        try:
            data = sock.recv(4096)
        except OSError:
            return True
    return True


@pytest.mark.slow
def test_stalled_clients_leave_ping_healthy_and_are_cut_off(unpacked_package, tmp_path):
    with running_server(
        unpacked_package, "--body-timeout", "3", "--header-timeout", "3", log=tmp_path / "log"
    ) as url:
        host, port = url.removeprefix("http://").split(":")
        socks = [_stalled_body(host, int(port)) for _ in range(STALLED // 2)]
        socks += [_stalled_headers(host, int(port)) for _ in range(STALLED - STALLED // 2)]
        try:
            latencies, statuses = [], []
            with httpx.Client(timeout=5) as client:
                for _ in range(20):
                    started = time.perf_counter()
                    statuses.append(client.get(f"{url}/ping").status_code)
                    latencies.append(time.perf_counter() - started)
            assert statuses == [200] * 20
            assert statistics.median(latencies) < 0.5
            time.sleep(4.5)  # past both deadlines
            closed = sum(_closed_by_server(sock) for sock in socks)
            assert closed == len(socks), f"{len(socks) - closed} connections still open"
        finally:
            for sock in socks:
                sock.close()
