"""The project's server as a local subprocess on a free port (for tests and the benchmark)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(url: str) -> int | None:
    """The status of GET /ping, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:  # noqa: S310 - localhost
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@contextlib.contextmanager
def running_server(
    model: Path | str, *extra: str, ready_timeout: float = 180.0, log: Path | None = None
) -> Iterator[str]:
    """The base URL of ``python -m geo_busyness.serving`` serving ``model``, until exit."""
    port = free_port()
    command = [sys.executable, "-m", "geo_busyness.serving", "serve", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), *extra]
    output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    process = subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}; see {log}")
            if ping(url) == 200:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {ready_timeout} s; see {log}")
            time.sleep(0.25)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log:
            output.close()
