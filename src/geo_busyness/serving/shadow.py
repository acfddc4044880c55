"""Shadow mode: the champion answers; the challenger answers the same queries off the response path.

The server answers every invocation with its model (the champion) exactly as without shadow
mode. After a batch is answered, its query rows and the champion's answers are handed to one
shadow thread through a bounded queue (``put_nowait``: the worker never waits for it). The
thread asks the challenger and appends one JSON line per prediction to the shadow log::

    {"request_time": "...Z", "h3_cell": "...", "hour": "...Z",
     "champion": {"version": "3", "h3_cell": "...", "predicted_busyness": 1.2, "p10": ...,
                  "p50": ..., "p90": ..., "horizon_hours": 5},
     "challenger": {"version": "4", ...}}

``request_time`` is when the champion answered; ``h3_cell``/``hour`` are the query's cell (at
the champion's resolution) and UTC hour. When the queue is full the batch is dropped and its
predictions counted (``GET /shadow`` reports the counts). Each batch's lines are appended with
one ``write`` to a file opened ``O_APPEND``, so worker processes can share one log. The shadow
pipeline scores the log once the actual counts are known.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from geo_busyness.redaction import redact
from geo_busyness.schemas import H3_CELL, HOUR
from geo_busyness.serving.responses import ANSWER_COLUMNS, answer_columns
from geo_busyness.serving.threads import limit_current_thread

logger = logging.getLogger(__name__)

#: Environment variables read by ``ShadowSettings.from_env`` (set by ``python -m geo_busyness.serving``).
ENV_SHADOW_MODEL = "GEO_BUSYNESS_SHADOW_MODEL"
ENV_SHADOW_LOG = "GEO_BUSYNESS_SHADOW_LOG"
ENV_SHADOW_QUEUE = "GEO_BUSYNESS_SHADOW_QUEUE"
ENV_CHAMPION_VERSION = "GEO_BUSYNESS_CHAMPION_VERSION"
ENV_CHALLENGER_VERSION = "GEO_BUSYNESS_CHALLENGER_VERSION"
#: The answer fields logged per model (the query's hour is logged once, at the top level).
LOGGED_FIELDS = tuple(name for name in ANSWER_COLUMNS if name != HOUR)
Job = tuple[str, list[pd.DataFrame], list[pd.DataFrame]]  # answered at, queries, answers


@dataclass
class ShadowSettings:
    """The challenger to shadow, where its answers go, and the queue's bound."""

    model: str
    log_path: str
    champion_version: str | None = None
    challenger_version: str | None = None
    #: Answered batches waiting for the challenger; more are dropped (and counted).
    queue_size: int = 100

    @classmethod
    def from_env(cls) -> ShadowSettings | None:
        """The settings in the environment; None when no shadow model is set."""
        model = os.environ.get(ENV_SHADOW_MODEL)
        if not model:
            return None
        log_path = os.environ.get(ENV_SHADOW_LOG)
        if not log_path:
            raise RuntimeError(f"{ENV_SHADOW_MODEL} is set: set {ENV_SHADOW_LOG} too.")
        return cls(
            model=model,
            log_path=log_path,
            champion_version=os.environ.get(ENV_CHAMPION_VERSION) or None,
            challenger_version=os.environ.get(ENV_CHALLENGER_VERSION) or None,
            queue_size=int(os.environ.get(ENV_SHADOW_QUEUE) or 100),
        )


def shadow_lines(
    answered_at: str,
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    versions: tuple[str | None, str | None],
) -> bytes:
    """One JSON line per prediction: the query's cell and hour, both models' answers."""
    sides = [answer_columns(champion), answer_columns(challenger)]
    hours = sides[0][HOUR]
    lines = []
    for row in range(len(hours)):
        answers = [
            {"version": version, **{name: side[name][row] for name in LOGGED_FIELDS}}
            for side, version in zip(sides, versions, strict=True)
        ]
        line = {
            "request_time": answered_at,
            H3_CELL: answers[0][H3_CELL],
            HOUR: hours[row],
            "champion": answers[0],
            "challenger": answers[1],
        }
        lines.append(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
    return b"".join(lines)


class Shadow:
    """The challenger on its own thread, fed answered batches through a bounded queue."""

    def __init__(self, settings: ShadowSettings, loader: Callable[[str], Any]) -> None:
        self.settings = settings
        self._loader = loader
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max(1, settings.queue_size))
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.counts = {"logged": 0, "dropped": 0, "failed": 0}
        self.state = "starting"  # starting -> shadowing | failed -> stopped

    def start(self) -> None:
        """Start the shadow thread (it loads the challenger first); once."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
                self._thread.start()

    def submit(self, queries: list[pd.DataFrame], answers: list[pd.DataFrame]) -> None:
        """Hand an answered batch to the challenger; drop and count it if the queue is full."""
        if not queries or self.state in ("failed", "stopped"):
            return
        answered_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            self._queue.put_nowait((answered_at, queries, answers))
        except queue.Full:
            first = self.counts["dropped"] == 0
            self._count("dropped", sum(len(frame) for frame in answers))
            if first:
                logger.warning(
                    "Shadow queue full (%d batches): dropping predictions the challenger has no"
                    " time for (counted in GET /shadow).",
                    self._queue.maxsize,
                )

    def stats(self) -> dict[str, Any]:
        """What ``GET /shadow`` answers."""
        return {
            "state": self.state,
            "champion_version": self.settings.champion_version,
            "challenger_version": self.settings.challenger_version,
            "queued_batches": self._queue.qsize(),
            **self.counts,
        }

    def stop(self, timeout: float = 10.0) -> None:
        """Log what is queued (within ``timeout``), then stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self.state = "stopped"
        logger.info("Shadow mode stopped: %s", self.counts)

    def _count(self, name: str, rows: int) -> None:
        with self._lock:
            self.counts[name] += rows

    def _run(self) -> None:
        limit_current_thread()
        try:
            model = self._loader(self.settings.model)
            path = Path(self.settings.log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except Exception as exc:  # noqa: BLE001 - the champion keeps serving without a shadow
            self.state = "failed"
            logger.error(
                "Shadow mode off: %s could not be loaded or its log opened (%s: %s)",
                redact(self.settings.model),
                type(exc).__name__,
                redact(str(exc).splitlines()[0] if str(exc) else ""),
            )
            return
        self.state = "shadowing"
        logger.info(
            "Shadowing champion %s with challenger %s into %s",
            self.settings.champion_version,
            self.settings.challenger_version,
            path,
        )
        try:
            while (job := self._queue.get()) is not None:
                self._log(model, log, job)
        finally:
            os.close(log)

    def _log(self, model: Any, log: int, job: Job) -> None:
        """Ask the challenger the batch's queries; append the lines (failures are counted)."""
        from geo_busyness.model.predict import predict_busyness  # noqa: PLC0415

        answered_at, queries, answers = job
        champion = pd.concat(answers, ignore_index=True)
        try:
            challenger = predict_busyness(model, pd.concat(queries, ignore_index=True))
            versions = (self.settings.champion_version, self.settings.challenger_version)
            os.write(log, shadow_lines(answered_at, champion, challenger, versions))
        except Exception as exc:  # noqa: BLE001 - one failed batch costs only its lines
            self._count("failed", len(champion))
            logger.warning("Shadow batch of %d prediction(s) failed: %s", len(champion), exc)
            return
        self._count("logged", len(champion))
