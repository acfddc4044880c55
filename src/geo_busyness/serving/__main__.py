"""``python -m geo_busyness.serving`` (the container's ``serve``): run the model server.

    python -m geo_busyness.serving --model /opt/ml/model            # SageMaker's layout
    python -m geo_busyness.serving --model models:/geo-busyness@champion --port 8080

Defaults follow SageMaker's conventions: the model in ``/opt/ml/model`` (or ``SM_MODEL_DIR``),
port ``SAGEMAKER_BIND_TO_PORT`` or 8080, workers ``SAGEMAKER_MODEL_SERVER_WORKERS`` or 1. An
MLflow URI is downloaded once before the worker processes start. A first argument ``serve``
(how SageMaker starts a container) is accepted and ignored.

Every request has deadlines for its headers, body and answer (``--header-timeout``,
``--body-timeout``, ``--send-timeout``) and each stage its own bound: clients still sending a
body (``--max-waiting-bodies``) or not reading their answers (``--max-unsent-bytes``) never
hold the invocation slots (``--max-concurrency``); ``/ping`` answers 503 while those are all
taken (``serving/protocol.py``).

Shadow mode (``--shadow-model`` and ``--shadow-log``): every answer still comes from
``--model``; the shadow model answers the same queries off the response path and both answers
go to the shadow log, one JSON line per prediction (``serving/shadow.py``)::

    python -m geo_busyness.serving --model DIR --model-version 3 \
        --shadow-model models:/geo-busyness/4 --shadow-version 4 \
        --shadow-log data/07_model_output/shadow/shadow_predictions.jsonl
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence

from geo_busyness.serving.threads import single_threaded_math

single_threaded_math()  # before numpy/scikit-learn load their thread pools

from geo_busyness.redaction import install_log_redaction, redact  # noqa: E402
from geo_busyness.remote import prepare_model_fetch  # noqa: E402
from geo_busyness.serving.app import (  # noqa: E402
    ENV_BODY_TIMEOUT,
    ENV_LOAD_TIMEOUT,
    ENV_MAX_BODY_BYTES,
    ENV_MAX_CONCURRENCY,
    ENV_MODEL,
)
from geo_busyness.serving.protocol import (  # noqa: E402
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_UNSENT_BYTES,
    DEFAULT_MAX_WAITING_BODIES,
    DEFAULT_SEND_TIMEOUT,
    ENV_HEADER_TIMEOUT,
    ENV_MAX_UNSENT_BYTES,
    ENV_MAX_WAITING_BODIES,
    ENV_SEND_TIMEOUT,
    GuardedHttpToolsProtocol,
    Limits,
)
from geo_busyness.serving.refresh import (  # noqa: E402
    ENV_COUNTS_INTERVAL,
    ENV_COUNTS_STATE,
    ENV_FOLLOW,
    ENV_FOLLOW_INTERVAL,
    ENV_MODEL_VERSION,
    alias_of,
)
from geo_busyness.serving.requests import DEFAULT_MAX_BODY_BYTES  # noqa: E402
from geo_busyness.serving.shadow import (  # noqa: E402
    ENV_CHALLENGER_VERSION,
    ENV_CHAMPION_VERSION,
    ENV_SHADOW_LOG,
    ENV_SHADOW_MODEL,
    ENV_SHADOW_QUEUE,
)

logger = logging.getLogger("geo_busyness.serving")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m geo_busyness.serving", description="Serve the busyness model over HTTP."
    )
    parser.add_argument(
        "--model",
        default=os.environ.get(ENV_MODEL) or os.environ.get("SM_MODEL_DIR", "/opt/ml/model"),
        help="model directory (MLflow model or unpacked model.tar.gz) or MLflow model URI",
    )
    parser.add_argument("--host", default=os.environ.get("GEO_BUSYNESS_HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "1")),
        help="server processes, each with its own copy of the model",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(os.environ.get(ENV_MAX_BODY_BYTES) or DEFAULT_MAX_BODY_BYTES),
    )
    parser.add_argument("--load-timeout", type=float, default=120.0)
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=256,
        help="invocations per worker with their whole body, queued or answered, before new"
        " ones get 503 and /ping answers 503 busy (clients still sending a body wait apart:"
        " --max-waiting-bodies)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(os.environ.get(ENV_BODY_TIMEOUT) or 20.0),
        help="seconds a client has to send a request body (then 408 and the connection closes)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=float(os.environ.get(ENV_HEADER_TIMEOUT) or DEFAULT_HEADER_TIMEOUT),
        help="seconds a client has to send a request's headers (then the connection closes)",
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=float(os.environ.get(ENV_SEND_TIMEOUT) or DEFAULT_SEND_TIMEOUT),
        help="seconds a client has to take an answer once it stops reading (then the"
        " connection is dropped and its buffers freed)",
    )
    parser.add_argument(
        "--max-waiting-bodies",
        type=int,
        default=int(os.environ.get(ENV_MAX_WAITING_BODIES) or DEFAULT_MAX_WAITING_BODIES),
        help="connections per worker still sending a request body; past it the longest"
        " waiting gets 503 (they never hold invocation slots)",
    )
    parser.add_argument(
        "--max-unsent-bytes",
        type=int,
        default=int(os.environ.get(ENV_MAX_UNSENT_BYTES) or DEFAULT_MAX_UNSENT_BYTES),
        help="bytes of answers per worker waiting for clients that do not read; past it the"
        " longest waiting connection is dropped",
    )
    parser.add_argument(
        "--counts-state",
        default=os.environ.get(ENV_COUNTS_STATE),
        help="counts state (path or s3:// URI) applied to the model and followed as it is"
        " republished (the ingestion pipeline's counts_state)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        help="seconds between looks at the counts state and the followed alias (default 30)",
    )
    parser.add_argument("--log-level", default=os.environ.get("GEO_BUSYNESS_LOG_LEVEL", "info"))
    shadow = parser.add_argument_group("shadow mode")
    shadow.add_argument(
        "--shadow-model",
        help="model dir or MLflow URI that also answers every query (logged, never returned)",
    )
    shadow.add_argument("--shadow-log", help="JSON lines file the shadow answers are appended to")
    shadow.add_argument("--model-version", help="version label of --model, logged with its answers")
    shadow.add_argument("--shadow-version", help="version label of --shadow-model")
    shadow.add_argument(
        "--shadow-queue",
        type=int,
        default=100,
        help="answered batches waiting for the shadow model; more are dropped and counted",
    )
    return parser


def local_model(location: str) -> str:
    """``location`` itself when local, else where it was downloaded to (exit in one line)."""
    from geo_busyness.model.loading import fetch_model, is_local  # noqa: PLC0415

    if is_local(location):
        return location
    target = tempfile.mkdtemp(prefix="geo-busyness-model-")
    logger.info("Downloading %s to %s", redact(location), target)
    try:
        return str(fetch_model(location, target))
    except Exception as error:  # noqa: BLE001 - one line, not a traceback, then exit
        lines = str(error).strip().splitlines() or [""]
        raise SystemExit(
            f"Cannot fetch the model {redact(location)}: {type(error).__name__}: {redact(lines[0])}"
        ) from None


def pinned_alias(location: str, version: str | None) -> tuple[str, dict[str, str]]:
    """``models:/NAME@ALIAS`` pinned to the version the alias names now (the server follows
    the alias from there: the label of what it serves is exact), and the refresh environment;
    any other location as it is, with its version label when one is given."""
    env = {ENV_MODEL_VERSION: version} if version else {}
    if alias_of(location) is None or version:
        return location, env
    from geo_busyness.registry import alias_version  # noqa: PLC0415 - imports MLflow

    name, alias = location.removeprefix("models:/").split("@", 1)
    current = alias_version(name, alias)
    if current is None:
        raise SystemExit(f"No version of {name!r} carries the alias {alias!r}.")
    return f"models:/{name}/{current}", {ENV_FOLLOW: location, ENV_MODEL_VERSION: current}


def refresh_environment(args: argparse.Namespace) -> dict[str, str]:
    """The counts state and poll intervals of the server's refresher (``serving/refresh.py``)."""
    env = {ENV_COUNTS_STATE: args.counts_state} if args.counts_state else {}
    if args.poll_interval is not None:
        interval = str(args.poll_interval)
        env |= {ENV_COUNTS_INTERVAL: interval, ENV_FOLLOW_INTERVAL: interval}
    return env


def shadow_environment(args: argparse.Namespace) -> dict[str, str]:
    """The shadow mode's environment variables for the worker processes (none when off)."""
    if not args.shadow_model:
        return {}
    if not args.shadow_log:
        raise SystemExit("--shadow-model needs --shadow-log (where the answers are logged).")
    return {
        ENV_SHADOW_MODEL: local_model(args.shadow_model),
        ENV_SHADOW_LOG: str(os.path.abspath(args.shadow_log)),
        ENV_SHADOW_QUEUE: str(args.shadow_queue),
        ENV_CHAMPION_VERSION: args.model_version or "",
        ENV_CHALLENGER_VERSION: args.shadow_version or "",
    }


def serve(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and run uvicorn until stopped."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")

    import uvicorn  # noqa: PLC0415

    install_log_redaction()
    prepare_model_fetch(args.model, args.shadow_model)  # deadlines before any registry call
    location, followed = pinned_alias(args.model, args.model_version)
    os.environ.update(followed | refresh_environment(args))
    model = local_model(location)
    os.environ.update(shadow_environment(args))
    os.environ[ENV_MODEL] = model
    os.environ[ENV_MAX_BODY_BYTES] = str(args.max_body_bytes)
    os.environ[ENV_LOAD_TIMEOUT] = str(args.load_timeout)
    os.environ[ENV_BODY_TIMEOUT] = str(args.body_timeout)
    os.environ[ENV_HEADER_TIMEOUT] = str(args.header_timeout)
    os.environ[ENV_SEND_TIMEOUT] = str(args.send_timeout)
    os.environ[ENV_MAX_WAITING_BODIES] = str(args.max_waiting_bodies)
    os.environ[ENV_MAX_UNSENT_BYTES] = str(args.max_unsent_bytes)
    os.environ[ENV_MAX_CONCURRENCY] = str(args.max_concurrency)
    try:
        Limits.from_env()  # checked once here: each connection reads them again
    except ValueError as error:
        raise SystemExit(f"Invalid server limit: {error}") from None
    logger.info(
        "Serving %s on %s:%d with %d worker(s)", redact(model), args.host, args.port, args.workers
    )
    uvicorn.run(
        "geo_busyness.serving.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # httptools with deadlines and bounds per stage (headers, body, answer); the
        # invocation limit is the app's (uvicorn's limit_concurrency counts stalled clients).
        http=GuardedHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        # The app never reads the client's address: no X-Forwarded-* rewriting per request.
        proxy_headers=False,
        log_level=args.log_level.lower(),
        timeout_keep_alive=75,  # above the 60 s idle timeout of SageMaker's front end
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    serve()
