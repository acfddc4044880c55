"""Test and benchmark helpers: a scratch copy of the project, and the server as a subprocess.

Runs in a scratch copy write their data, MLflow store and logs there, never into the checkout.
``running_server`` starts ``python -m geo_busyness.serving`` on a free local port.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)


def make_project_copy(dest: Path, source: Path = PROJECT_ROOT) -> Path:
    """Copy ``source``'s shared configuration (every env but the personal ``local``) into
    ``dest``, with an empty ``conf/local`` and empty data folders."""
    for env in (source / "conf").iterdir():
        if env.is_dir() and env.name != "local":
            shutil.copytree(env, dest / "conf" / env.name)
    (dest / "conf" / "local").mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(source / name, dest / name)
    (dest / "src").mkdir()  # bootstrap_project wants a source dir; the package is installed
    for layer in DATA_LAYERS:
        (dest / "data" / layer).mkdir(parents=True)
    use_own_mlflow_store(dest)
    return dest


def run_report(project: Path) -> dict:
    """The evaluation report of the project's latest training run (versioned under
    ``08_reporting/runs/``; ``08_reporting/evaluation_report.json`` is the champion's)."""
    runs = project / "data" / "08_reporting" / "runs" / "evaluation_report.json"
    found = sorted(runs.glob("*/evaluation_report.json"))
    if not found:
        raise FileNotFoundError(f"No training run wrote an evaluation report under {runs}.")
    return json.loads(found[-1].read_text())


def tracking_uri(project: Path) -> str:
    """The absolute SQLite tracking URI of a project copy's own MLflow store."""
    return f"sqlite:///{project / 'mlflow.db'}"


def use_own_mlflow_store(project: Path) -> None:
    """Point the copy's base MLflow tracking URI at its own SQLite file, by absolute path.

    MLflow caches one store per tracking URI string in a process, so the relative
    ``sqlite:///mlflow.db`` would keep every later copy on the first copy's database.
    """
    config = project / "conf" / "base" / "mlflow.yml"
    text = re.sub(
        r"(?m)^(\s*mlflow_tracking_uri:)\s*\S+",
        lambda match: f"{match.group(1)} {tracking_uri(project)}",
        config.read_text(),
    )
    config.write_text(text)


# ---------------------------------------------------------------- the server
def free_port() -> int:
    """A TCP port free on localhost right now."""
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


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to a process started with ``start_new_session=True`` and its children, SIGKILL
    after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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
        stop_process_group(process, timeout=15)
        if log:
            output.close()
