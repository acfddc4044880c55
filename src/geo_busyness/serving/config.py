"""What a server process serves and its limits (``Settings``), read from the environment that
``python -m geo_busyness.serving`` sets for its worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from geo_busyness.model.queries import DEFAULT_MAX_DISTANCE_KM
from geo_busyness.serving.refresh import RefreshSettings
from geo_busyness.serving.requests import DEFAULT_MAX_BODY_BYTES
from geo_busyness.serving.shadow import ShadowSettings

#: Environment variables read by ``create_app`` (set by ``python -m geo_busyness.serving``).
ENV_MODEL = "GEO_BUSYNESS_MODEL"
ENV_MAX_BODY_BYTES = "GEO_BUSYNESS_MAX_BODY_BYTES"
ENV_LOAD_TIMEOUT = "GEO_BUSYNESS_MODEL_LOAD_TIMEOUT"
ENV_BODY_TIMEOUT = "GEO_BUSYNESS_BODY_TIMEOUT"
ENV_MAX_CONCURRENCY = "GEO_BUSYNESS_MAX_CONCURRENCY"
ENV_MAX_DISTANCE_KM = "GEO_BUSYNESS_MAX_DISTANCE_KM"


@dataclass
class Settings:
    """What a server process serves and its limits."""

    model: str
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: How long an invocation that arrives during loading waits for the model, in seconds.
    load_timeout: float = 120.0
    #: Invocations answered together when they queue up behind a busy worker.
    max_batch_requests: int = 64
    #: Seconds a client has to send a request's whole body (slowloris): then 408, closed.
    body_timeout: float = 20.0
    #: Invocations open at once (reading, queued or answering) before new ones get 503. /ping
    #: is never limited: stalled clients cannot make the container look unhealthy.
    max_concurrency: int = 256
    #: Queries farther than this (km) from every cell the model knows are refused (400); 0
    #: turns the check off.
    max_distance_km: float = DEFAULT_MAX_DISTANCE_KM
    #: Shadow mode: the challenger answering the same queries into a log (None: off).
    shadow: ShadowSettings | None = None
    #: Fresh counts and a followed alias: what to poll, how often, the version served, alerts.
    refresh: RefreshSettings = field(default_factory=RefreshSettings)
    loader: Callable[[str], Any] | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> Settings:
        model = os.environ.get(ENV_MODEL)
        if not model:
            raise RuntimeError(f"Set {ENV_MODEL} to the model directory or MLflow model URI.")
        return cls(
            model=model,
            max_body_bytes=int(os.environ.get(ENV_MAX_BODY_BYTES) or DEFAULT_MAX_BODY_BYTES),
            load_timeout=float(os.environ.get(ENV_LOAD_TIMEOUT, "120")),
            body_timeout=float(os.environ.get(ENV_BODY_TIMEOUT) or 20.0),
            max_concurrency=int(os.environ.get(ENV_MAX_CONCURRENCY) or 256),
            max_distance_km=float(os.environ.get(ENV_MAX_DISTANCE_KM) or DEFAULT_MAX_DISTANCE_KM),
            shadow=ShadowSettings.from_env(),
            refresh=RefreshSettings.from_env(),
        )
