"""Test and benchmark helpers: a scratch copy of the project, the server as a subprocess, and
local receivers for alerts.

Runs in a scratch copy write their data, MLflow store and logs there, never into the checkout.
``running_server`` starts ``python -m geo_busyness.serving`` on a free local port;
``LocalWebhook`` and ``start_moto`` (SNS, SQS, S3 on loopback) receive what a run sends.
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
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: The shipped candidates but the random forest, whose grid search is the slowest fit: for
#: test and toy runs that drive the loop rather than judge the model.
CANDIDATES_WITHOUT_FOREST = (
    "seasonal_naive",
    "level_adjusted",
    "recent_level",
    "pooled_level",
    "gradient_boosting",
)
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
    return _status(f"{url}/ping")


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


# ---------------------------------------------------------------- alert receivers
#: The credentials every moto client and server of the tests and benchmarks use.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_moto(
    extra_env: dict[str, str] | None = None, ready_timeout: float = 30.0
) -> tuple[subprocess.Popen, str]:
    """A moto server (S3, SNS, SQS...) on a free loopback port, in its own process group
    (``stop_process_group`` ends it): the process and its endpoint URL, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **FAKE_AWS, **(extra_env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while _status(f"{endpoint}/moto-api/") != 200:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        if time.monotonic() > deadline:
            stop_process_group(process)
            raise TimeoutError(f"moto_server did not answer within {ready_timeout:.0f} s")
        time.sleep(0.25)
    return process, endpoint


def _status(url: str) -> int | None:
    """The HTTP status of GET ``url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - localhost
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


class LocalWebhook:
    """A webhook receiver on a free loopback port, its URL ending in ``path``: each POST as
    ``{"at", "content_type", "path", "json"}`` (``json``: the raw body), answered with
    ``statuses`` in order, then 200, after ``delay_seconds``. A context manager."""

    def __init__(self, path: str = "/services/T0000/B0000/s3cr3tW3bh00kP4th") -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.delay_seconds = 0.0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(
                    {
                        "at": time.time(),
                        "content_type": self.headers["Content-Type"],
                        "path": self.path,
                        "json": body,
                    }
                )
                time.sleep(hook.delay_seconds)
                self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        return Handler

    def payloads(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far."""
        return [json.loads(item["json"]) for item in self.received]

    def close(self) -> None:
        """Stop answering and free the port."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LocalWebhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe_queue(sns: Any, sqs: Any, topic_arn: str) -> str:
    """An SQS queue subscribed to the SNS topic (to read what was published); its URL."""
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    return queue_url


def received_notifications(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """The SNS notifications waiting in the queue (envelope with Subject, Message, ...), taken
    off it: a message only received would come back after SQS's visibility timeout (30 s), in
    the next call's answer."""
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    if messages:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
                for number, message in enumerate(messages)
            ],
        )
    return [json.loads(message["Body"]) for message in messages]
