"""Shadow mode: the champion answers; the challenger answers the same queries off the response path.

The server answers every invocation with its model (the champion) exactly as without shadow
mode. After a batch is answered, its query rows and the champion's answers are handed to one
shadow thread through a bounded queue (``put_nowait``: the worker never waits for it). The
thread asks the challenger and appends one JSON line per prediction to the shadow log::

    {"request_time": "...Z", "h3_cell": "...", "hour": "...Z",
     "champion": {"version": "3", "h3_cell": "...", "predicted_busyness": 1.2, "p10": ...,
                  "p50": ..., "p90": ..., "horizon_hours": 5, "origin": "...Z"},
     "challenger": {"version": "4", ...}}

Like for like: the challenger answers each query from the champion's origin and horizon
(``like_for_like_answers``), never from later counts it happens to hold (a challenger trained
on the week being asked about would otherwise answer it 1 h ahead against the champion's days
ahead). Only where its counts do not reach the champion's origin does it answer from its own
origin; the logged ``origin``/``horizon_hours`` then differ and the shadow pipeline leaves the
row out of the comparison.

``request_time`` is when the champion answered; ``h3_cell``/``hour`` are the query's cell (at
the champion's resolution) and UTC hour. When the queue is full the batch is dropped and its
predictions counted (``GET /shadow`` reports the counts). Each batch's lines are appended with
one ``write`` to a file opened ``O_APPEND``, so worker processes can share one log. The log is
rotated by size (``ShadowLog``): the full file is renamed ``<name>.<UTC time>.jsonl`` beside
it and a new one started. The shadow pipeline scores the log once the actual counts are known.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from geo_busyness.redaction import redact
from geo_busyness.schemas import EVENT_LAT, EVENT_LON, H3_CELL, HORIZON, HOUR, PREDICTION
from geo_busyness.serving.responses import ANSWER_COLUMNS, answer_columns
from geo_busyness.serving.threads import limit_current_thread

logger = logging.getLogger(__name__)

#: Environment variables read by ``ShadowSettings.from_env`` (set by ``python -m geo_busyness.serving``).
ENV_SHADOW_MODEL = "GEO_BUSYNESS_SHADOW_MODEL"
ENV_SHADOW_LOG = "GEO_BUSYNESS_SHADOW_LOG"
ENV_SHADOW_QUEUE = "GEO_BUSYNESS_SHADOW_QUEUE"
ENV_CHAMPION_VERSION = "GEO_BUSYNESS_CHAMPION_VERSION"
ENV_CHALLENGER_VERSION = "GEO_BUSYNESS_CHALLENGER_VERSION"
ENV_SHADOW_LOG_MAX_BYTES = "GEO_BUSYNESS_SHADOW_LOG_MAX_BYTES"
#: The answer fields logged per model (the query's hour is logged once, at the top level).
LOGGED_FIELDS = tuple(name for name in ANSWER_COLUMNS if name != HOUR)
#: Size at which the shadow log is rotated (a few hundred thousand predictions).
DEFAULT_MAX_LOG_BYTES = 64 * 2**20
_HOUR_NS = pd.Timedelta(hours=1).value
#: Answered at, queries, answers, the champion's origin (None: taken from each answer).
Job = tuple[str, list[pd.DataFrame], list[pd.DataFrame], pd.Timestamp | None]


@dataclass
class ShadowSettings:
    """The challenger to shadow, where its answers go, and the queue's bound."""

    model: str
    log_path: str
    champion_version: str | None = None
    challenger_version: str | None = None
    #: Answered batches waiting for the challenger; more are dropped (and counted).
    queue_size: int = 100
    #: The log is rotated once it holds this many bytes.
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES

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
            max_log_bytes=int(os.environ.get(ENV_SHADOW_LOG_MAX_BYTES) or DEFAULT_MAX_LOG_BYTES),
        )


def rotated_log_name(path: Path, when: datetime) -> Path:
    """Where a full log goes: ``<stem>.<UTC time to the microsecond>Z<suffix>`` beside it (the
    names sort by time; the active file, without a time, is read after them)."""
    return path.with_name(f"{path.stem}.{when:%Y%m%dT%H%M%S.%f}Z{path.suffix}")


class ShadowLog:
    """The shadow log opened for appending, rotated once it reaches ``max_bytes``.

    Several worker processes may append to one log: each write is one ``os.write`` to a file
    opened ``O_APPEND``; the rename is done under a lock file by whichever process finds the
    file full first, and the others notice (the path no longer names their open file) and
    reopen it before their next write.
    """

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes of the shadow log must be >= 1, got {max_bytes}.")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, data: bytes) -> None:
        """Append ``data`` (whole lines), rotating the file first when it is full."""
        self._rotate_if_full()
        os.write(self._fd, data)

    def close(self) -> None:
        os.close(self._fd)

    def _is_mine(self) -> os.stat_result | None:
        """The path's status if it still names the open file (None: rotated by another)."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return None
        mine = os.fstat(self._fd)
        return current if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev) else None

    def _rotate_if_full(self) -> None:
        current = self._is_mine()
        if current is not None and current.st_size < self.max_bytes:
            return
        if current is not None:
            lock = self.path.with_name(f".{self.path.name}.lock")
            with open(lock, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # one process renames; others reopen
                current = self._is_mine()
                if current is not None and current.st_size >= self.max_bytes:
                    os.rename(self.path, rotated_log_name(self.path, datetime.now(UTC)))
        os.close(self._fd)
        self._fd = self._open()


def like_for_like_answers(
    model: Any,
    queries: pd.DataFrame,
    champion: pd.DataFrame,
    origin: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The challenger's answers to ``queries`` from the champion's origin and horizon, and both
    sides' origins (UTC hour, int64 ns).

    The champion answered hour ``t`` from origin ``t - (horizon - 1) h``; beyond a week ahead
    it answers the same hour of the first week ahead, so its origin is earlier: ``origin`` (the
    champion's, when the caller knows it) caps the one taken from each answer. Where the
    challenger's counts do not reach that origin it answers from its own (the usual serving
    rule), and the logged origins differ.
    """
    from geo_busyness.model.cell_hours import utc_hour_ns  # noqa: PLC0415 - with the model
    from geo_busyness.model.geo import cell_names, h3_cells  # noqa: PLC0415
    from geo_busyness.model.predict import as_forecaster  # noqa: PLC0415

    forecaster = as_forecaster(model)
    history = forecaster.history_
    hours = utc_hour_ns(champion[HOUR])
    horizon = champion[HORIZON].to_numpy(dtype=np.int64)
    champion_origin = hours - (horizon - 1) * _HOUR_NS
    if origin is not None:
        champion_origin = np.minimum(champion_origin, pd.Timestamp(origin).value)
    cells = h3_cells(queries[EVENT_LAT], queries[EVENT_LON], forecaster.resolution)
    rows, own_origin, own_horizon = forecaster.serving_rows(cells, hours)
    wanted = history.positions(champion_origin)
    holds = (wanted >= 1) & (wanted <= history.hours)  # counts up to the champion's origin
    origin_position = np.where(holds, wanted, own_origin)
    horizon_used = np.where(holds, horizon, own_horizon)
    mean = np.clip(forecaster.predict_rows(rows, origin_position, horizon_used), 0.0, None)
    answers = pd.DataFrame(
        {
            H3_CELL: cell_names(cells),
            HOUR: champion[HOUR].to_numpy(),
            PREDICTION: mean,
        }
    )
    for name, values in zip(
        ("p10", "p50", "p90"), forecaster.quantiles(mean, horizon_used), strict=True
    ):
        answers[name] = values
    answers[HORIZON] = horizon_used
    return answers, champion_origin, history.start_ns + origin_position * _HOUR_NS


def shadow_lines(
    answered_at: str,
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    versions: tuple[str | None, str | None],
    origins: tuple[np.ndarray, np.ndarray] | None = None,
) -> bytes:
    """One JSON line per prediction: the query's cell and hour, both models' answers (with the
    origin each answered from, when given)."""
    sides = [answer_columns(champion), answer_columns(challenger)]
    hours = sides[0][HOUR]
    origin_text = [_iso(values) for values in origins] if origins is not None else [None, None]
    lines = []
    for row in range(len(hours)):
        answers = [
            {"version": version, **{name: side[name][row] for name in LOGGED_FIELDS}}
            for side, version in zip(sides, versions, strict=True)
        ]
        for answer, text in zip(answers, origin_text, strict=True):
            if text is not None:
                answer["origin"] = text[row]
        line = {
            "request_time": answered_at,
            H3_CELL: answers[0][H3_CELL],
            HOUR: hours[row],
            "champion": answers[0],
            "challenger": answers[1],
        }
        lines.append(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
    return b"".join(lines)


def _iso(hours_ns: np.ndarray) -> list[str]:
    """int64 ns UTC hours as ISO 8601 text ending in Z."""
    values = np.asarray(hours_ns, dtype=np.int64).astype("datetime64[ns]").astype("datetime64[s]")
    return np.datetime_as_string(values, unit="s", timezone="UTC").tolist()


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

    def submit(
        self,
        queries: list[pd.DataFrame],
        answers: list[pd.DataFrame],
        origin: pd.Timestamp | None = None,
    ) -> None:
        """Hand an answered batch to the challenger; drop and count it if the queue is full.

        ``origin`` is the champion's (the served model's ``origin``): with it the challenger
        matches the champion beyond a week ahead too (see ``like_for_like_answers``)."""
        if not queries or self.state in ("failed", "stopped"):
            return
        answered_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            self._queue.put_nowait((answered_at, queries, answers, origin))
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
            log = ShadowLog(path, self.settings.max_log_bytes)
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
            log.close()

    def _log(self, model: Any, log: ShadowLog, job: Job) -> None:
        """Ask the challenger the batch's queries from the champion's origins; append the lines
        (failures are counted)."""
        answered_at, queries, answers, origin = job
        champion = pd.concat(answers, ignore_index=True)
        try:
            challenger, *origins = like_for_like_answers(
                model, pd.concat(queries, ignore_index=True), champion, origin
            )
            versions = (self.settings.champion_version, self.settings.challenger_version)
            log.append(shadow_lines(answered_at, champion, challenger, versions, tuple(origins)))
        except Exception as exc:  # noqa: BLE001 - one failed batch costs only its lines
            self._count("failed", len(champion))
            logger.warning("Shadow batch of %d prediction(s) failed: %s", len(champion), exc)
            return
        self._count("logged", len(champion))
