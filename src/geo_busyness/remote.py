"""Deadlines on every remote call: the MLflow tracking server and registry, and S3.

The values live here and nowhere else. ``bound_remote_calls`` puts them in force for this
process and the processes it starts; every entry point calls it before its first remote call:
``hooks.TrackingServerHook`` (every Kedro session: ``kedro run``, ``kedro retrain``'s steps,
``kedro generate-data``, ``kedro serve``'s look-ups), ``registry`` (every ``MlflowClient``),
and ``prepare_model_fetch`` (``kedro serve`` and ``python -m geo_busyness.serving``, before
they download a model).

- MLflow's HTTP client (tracking server, registry, proxied artifacts): its environment
  variables, read at every request and inherited by child processes.
- S3 through s3fs (the catalog's datasets): ``S3FileSystem``'s default timeouts and its own
  retry loop (which would otherwise wrap botocore's: 5 x 5 attempts x 15 s).
- S3 through boto3 (MLflow's S3 artifact store, anything using ``boto3.client``): the default
  session's client config. botocore's attempts (s3fs's too) come from ``AWS_MAX_ATTEMPTS``.

Without these, a tracking server that is down took 249 s to fail a model download, one that
accepts and never answers over 400 s, and an S3 endpoint that never answers held a run for
more than 590 s. Variables already set in the environment win, so an operator can loosen a
deadline for one job without editing code.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from geo_busyness.redaction import redact, without_userinfo

logger = logging.getLogger(__name__)

#: Seconds to connect to, then to hear from, the MLflow server, per attempt.
TRACKING_TIMEOUT_S = 10
#: Retries after a failed MLflow request (the first comes at once: urllib3 waits only from
#: the second). Worst case: (1 + retries) x timeout = 20 s.
TRACKING_RETRIES = 1
#: Seconds to connect to, then to hear from, S3, per attempt.
S3_CONNECT_TIMEOUT_S = 5
S3_READ_TIMEOUT_S = 6
#: botocore attempts per call, the first included (standard mode: jittered backoff <= 1 s).
#: Worst case: 2 x 6 s + 1 s = 13 s.
AWS_ATTEMPTS = 2
#: How long the start-up check of an MLflow server may take in all, in seconds.
PROBE_BUDGET_S = 10.0
#: Overrides ``PROBE_BUDGET_S`` (seconds, positive): read at every probe, so a test of a dead
#: server, or an operator on a slow link, sets it without editing code.
ENV_PROBE_BUDGET_S = "GEO_BUSYNESS_PROBE_BUDGET_S"

#: Environment defaults: MLflow's HTTP client and botocore's retries. Already-set values win.
ENVIRONMENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": str(TRACKING_TIMEOUT_S),
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(TRACKING_RETRIES),
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    # A 429/503 answer's Retry-After (seconds to minutes) would otherwise override the deadline.
    "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER": "false",
    "AWS_MAX_ATTEMPTS": str(AWS_ATTEMPTS),
    "AWS_RETRY_MODE": "standard",
    # Not a deadline, but set where every remote session starts: artifact downloads draw no
    # progress bar (each redraw became part of one 2,000-character log line).
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
#: s3fs's own retry loop: one try (botocore retries inside it).
S3FS_TRIES = 1

#: URIs whose server answered a probe in this process (probed once).
_ANSWERED: set[str] = set()


class UnreachableServiceError(RuntimeError):
    """A remote service a command needs does not answer; the message names it, in one line."""


def bound_remote_calls(*, storage: bool = True) -> None:
    """Put the deadlines in force for this process and its children (idempotent).

    ``storage=False`` leaves s3fs alone (a model server never uses it; importing it costs
    ~0.5 s of start-up).
    """
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    _bound_boto3()
    if storage:
        _bound_s3fs()


def s3_config_kwargs() -> dict[str, object]:
    """botocore ``Config`` arguments with the S3 deadlines (for a client made by hand)."""
    return {
        "connect_timeout": S3_CONNECT_TIMEOUT_S,
        "read_timeout": S3_READ_TIMEOUT_S,
        # total_max_attempts counts the first try (as AWS_MAX_ATTEMPTS does); ``max_attempts``
        # here would count retries only.
        "retries": {"mode": "standard", "total_max_attempts": AWS_ATTEMPTS},
    }


def _bound_boto3() -> None:
    """Clients of boto3's default session (``boto3.client``, MLflow's S3 artifact store) get
    the S3 deadlines unless their own ``Config`` says otherwise."""
    try:
        import boto3  # noqa: PLC0415 - optional; ~0.2 s
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:
        return
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    # boto3 has no public setter: its Session keeps the botocore session in ``_session``.
    core = boto3.DEFAULT_SESSION._session  # noqa: SLF001
    ours = Config(**s3_config_kwargs())
    existing = core.get_default_client_config()
    core.set_default_client_config(ours.merge(existing) if existing else ours)


def _bound_s3fs() -> None:
    """s3fs's defaults (a catalog entry's own ``config_kwargs`` still wins for timeouts)."""
    try:
        import s3fs  # noqa: PLC0415 - optional; only for S3 catalogs
    except ImportError:
        return
    s3fs.S3FileSystem.connect_timeout = S3_CONNECT_TIMEOUT_S
    s3fs.S3FileSystem.read_timeout = S3_READ_TIMEOUT_S
    s3fs.S3FileSystem.retries = S3FS_TRIES


def probe_budget_s() -> float:
    """The start-up probe's budget in seconds: ``GEO_BUSYNESS_PROBE_BUDGET_S`` when set, else
    ``PROBE_BUDGET_S``; ``ValueError`` naming the variable when it is not a positive number."""
    text = os.environ.get(ENV_PROBE_BUDGET_S, "").strip()
    if not text:
        return PROBE_BUDGET_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{ENV_PROBE_BUDGET_S}={text!r}: expected a positive number of seconds"
            f" (default {PROBE_BUDGET_S:g})."
        )
    return value


def server_problem(uri: str, budget_s: float | None = None) -> str | None:
    """None if the HTTP(S) server at ``uri`` answers at all (any HTTP status) within
    ``budget_s`` (default: ``probe_budget_s()``), else why not. Other URIs (sqlite, file,
    databricks) are not probed."""
    parts = urllib.parse.urlsplit(without_userinfo(uri))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if budget_s is None:
        budget_s = probe_budget_s()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host  # no user-info on the wire here
    url = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )
    deadline = time.monotonic() + budget_s
    while True:
        left = deadline - time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=max(0.5, min(5.0, left))):  # noqa: S310
                return None
        except urllib.error.HTTPError:
            return None  # it answered (401, 404...): the server is there
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = str(getattr(error, "reason", error))
        if deadline - time.monotonic() < 1.0:
            return redact(reason)
        time.sleep(1.0)


def unreachable_message(service: str, uri: str, problem: str, variable: str) -> str:
    """One line naming the service, its URI (credentials masked), why and what to check."""
    return (
        f"The {service} {redact(uri)} does not answer ({problem}): start it, or check"
        f" {variable} and the network."
    )


def mlflow_servers() -> dict[str, tuple[str, str]]:
    """The MLflow servers this process would talk to: service -> (URI, the variable naming
    it), as MLflow resolves them (the session's ``set_tracking_uri``, else the environment),
    without importing MLflow."""
    mlflow = sys.modules.get("mlflow")
    tracking = mlflow.get_tracking_uri() if mlflow else os.environ.get("MLFLOW_TRACKING_URI", "")
    registry = (
        mlflow.get_registry_uri() if mlflow else os.environ.get("MLFLOW_REGISTRY_URI", "")
    ) or tracking
    servers = {"MLflow tracking server": (str(tracking), "MLFLOW_TRACKING_URI")}
    if registry != tracking:
        servers["MLflow model registry"] = (str(registry), "MLFLOW_REGISTRY_URI")
    return servers


def require_mlflow_servers(budget_s: float | None = None) -> None:
    """Raise ``UnreachableServiceError`` naming the first MLflow server (tracking, registry)
    that does not answer; each is probed once per process."""
    for service, (uri, variable) in mlflow_servers().items():
        if uri in _ANSWERED:
            continue
        problem = server_problem(uri, budget_s)
        if problem is not None:
            raise UnreachableServiceError(unreachable_message(service, uri, problem, variable))
        _ANSWERED.add(uri)


def needs_mlflow_server(location: str | None) -> bool:
    """Whether fetching the model at ``location`` asks an MLflow server (registry or run URIs)."""
    return bool(location) and str(location).startswith(("models:/", "runs:/"))


def prepare_model_fetch(*locations: str | None) -> None:
    """Deadlines on, and, when a location is a registry or run URI, the MLflow servers
    checked first: ``SystemExit`` with one line naming the one that does not answer.

    For the model server's start-up (``python -m geo_busyness.serving``, ``kedro serve``).
    """
    bound_remote_calls(storage=False)
    if any(needs_mlflow_server(location) for location in locations):
        try:
            require_mlflow_servers()
        except UnreachableServiceError as error:
            raise SystemExit(str(error)) from None
