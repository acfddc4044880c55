"""A running server follows fresh counts and its champion alias, without a restart.

Two things can change under a running server:

- **the counts state** (``model/counts_state.py``): published after each ingestion, it holds
  the latest per-cell counts. The server polls its location (``counts_state``) every
  ``counts_interval`` seconds with a cheap ``info`` (size, modification time, ETag); when it
  changed, the state is read, applied to the model as loaded (``state.apply``: no refit),
  smoke-checked, and served with its lookup table;
- **the followed alias** (``models:/name@champion``): polled every ``follow_interval`` seconds;
  when it points at another version, that version is loaded beside the one serving
  (``load_model``: its digest is checked), checked (same H3 resolution and time zone, a smoke
  prediction on a few known cells), given the current counts state and its table, then served.

Either way the new ``Served`` (model, table, version, state) is built on the refresher's thread
and replaces the app's one reference: a request is answered wholly by the old or the new, and
none waits for or fails because of the swap. A state or a version that fails to read, load or
check is refused in one log line and the old one keeps serving; a refused version also sends
the ``serving_swap_refused`` alert (``geo_busyness.operations.alerts``) and is not tried again until the
alias moves.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from geo_busyness.redaction import redact

if TYPE_CHECKING:
    import pandas as pd

    from geo_busyness.model.counts_state import CountsState
    from geo_busyness.serving.lookup import Served

logger = logging.getLogger(__name__)

#: Environment variables read by ``RefreshSettings.from_env`` (set by ``kedro serve``).
ENV_COUNTS_STATE = "GEO_BUSYNESS_COUNTS_STATE"
ENV_COUNTS_INTERVAL = "GEO_BUSYNESS_COUNTS_INTERVAL"
ENV_FOLLOW = "GEO_BUSYNESS_FOLLOW"
ENV_FOLLOW_INTERVAL = "GEO_BUSYNESS_FOLLOW_INTERVAL"
ENV_MODEL_VERSION = "GEO_BUSYNESS_MODEL_VERSION"
#: JSON ``{"alerts": <the alerts parameters>, "credentials": {<entries they name>}}``.
ENV_ALERTS = "GEO_BUSYNESS_ALERTS"
DEFAULT_INTERVAL_SECONDS = 30.0
#: The alert a refused new version sends (``operations/alerts/message.py`` EVENTS).
SWAP_REFUSED_EVENT = "serving_swap_refused"
#: Known cells a new model or state is asked about before it may serve.
SMOKE_CELLS = 5
#: The model parameters a new version must share with the one serving: a caller's cells and
#: local hours mean the same thing before and after the swap.
SHARED_PARAMETERS = ("resolution", "timezone")

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")


class RefreshRefused(RuntimeError):
    """A counts state or model version that may not serve: says why."""


@dataclass(frozen=True)
class RefreshSettings:
    """What a running server polls and how often, the version label of the model it starts
    with, and where a refused version is reported (``alerts``: see ``ENV_ALERTS``)."""

    counts_state: str | None = None
    counts_interval: float = DEFAULT_INTERVAL_SECONDS
    follow: str | None = None
    follow_interval: float = DEFAULT_INTERVAL_SECONDS
    model_version: str | None = None
    alerts: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("counts_interval", "follow_interval"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"Refresh setting {name} must be seconds > 0, not {value!r}.")
        if self.follow is not None and alias_of(self.follow) is None:
            raise ValueError(
                f"Refresh setting follow must be an alias URI models:/NAME@ALIAS, not"
                f" {redact(self.follow)!r}."
            )

    @classmethod
    def from_env(cls) -> RefreshSettings:
        """The settings ``kedro serve`` put in the environment; a bad value names its variable."""
        values: dict[str, Any] = {
            "counts_state": os.environ.get(ENV_COUNTS_STATE) or None,
            "follow": os.environ.get(ENV_FOLLOW) or None,
            "model_version": os.environ.get(ENV_MODEL_VERSION) or None,
        }
        for name, variable in (
            ("counts_interval", ENV_COUNTS_INTERVAL),
            ("follow_interval", ENV_FOLLOW_INTERVAL),
        ):
            text = os.environ.get(variable) or str(DEFAULT_INTERVAL_SECONDS)
            try:
                values[name] = float(text)
            except ValueError:
                raise ValueError(f"{variable} must be a number of seconds, not {text!r}.") from None
        try:
            values["alerts"] = json.loads(os.environ.get(ENV_ALERTS) or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{ENV_ALERTS} is not JSON: {exc.msg} at {exc.pos}.") from None
        return cls(**values)


def alias_of(location: str | None) -> tuple[str, str] | None:
    """``(name, alias)`` of a ``models:/name@alias`` URI; None for any other location."""
    match = _ALIAS_URI.match(str(location or ""))
    return (match["name"], match["alias"]) if match else None


def followed_alias(model_location: str, settings: RefreshSettings) -> str | None:
    """The alias URI a server follows: ``settings.follow``, else the model it was started on
    when that is an alias URI, else None (a directory or a pinned version stays as it is)."""
    return settings.follow or (model_location if alias_of(model_location) else None)


def file_signature(path: str) -> tuple[str, ...] | None:
    """``counts_state.state_signature``: one ``info`` call, None when there is no file."""
    from geo_busyness.model.counts_state import state_signature  # noqa: PLC0415 - fsspec

    return state_signature(path)


def smoke_queries(model: Any, cells: int = SMOKE_CELLS) -> pd.DataFrame:
    """Query rows at the centres of up to ``cells`` of the model's known cells (spread over its
    sorted list), half an hour after its origin (its nowcast)."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from geo_busyness.model.geo import cell_centres  # noqa: PLC0415
    from geo_busyness.model.predict import as_forecaster  # noqa: PLC0415
    from geo_busyness.model.queries import known_cells  # noqa: PLC0415
    from geo_busyness.schemas import EVENT_LAT, EVENT_LON, EVENT_TIME  # noqa: PLC0415

    forecaster = as_forecaster(model)
    known = known_cells(forecaster)
    if known is None:
        raise RefreshRefused("the model knows no cells")
    chosen = np.asarray(known, dtype=np.uint64)[np.linspace(0, len(known) - 1, cells).astype(int)]
    lat, lon = cell_centres(np.unique(chosen))
    hour = (forecaster.origin + pd.Timedelta(minutes=30)).isoformat()
    return pd.DataFrame({EVENT_TIME: hour, EVENT_LAT: lat, EVENT_LON: lon})


def check_predicts(model: Any) -> None:
    """Refuse a model whose smoke prediction fails or is not a forecast (NaN, negative, P10
    above P90)."""
    import numpy as np  # noqa: PLC0415

    from geo_busyness.model.predict import predict_busyness  # noqa: PLC0415
    from geo_busyness.schemas import PREDICTION  # noqa: PLC0415

    queries = smoke_queries(model)
    try:
        answers = predict_busyness(model, queries)
    except Exception as exc:  # noqa: BLE001 - whatever fails, the model may not serve
        raise RefreshRefused(f"its smoke prediction failed: {_one_line(exc)}") from exc
    values = answers[[PREDICTION, "p10", "p90"]].to_numpy(dtype=float)
    if len(answers) != len(queries) or not np.isfinite(values).all() or (values < 0).any():
        raise RefreshRefused(f"its smoke prediction is not a forecast: {values.tolist()}")
    if (values[:, 1] > values[:, 2]).any():
        raise RefreshRefused(f"its smoke prediction has P10 above P90: {values.tolist()}")


def check_candidate(serving: Any | None, candidate: Any) -> None:
    """Refuse a new model that does not share the serving model's ``SHARED_PARAMETERS`` or
    whose smoke prediction fails (``check_predicts``)."""
    from geo_busyness.model.predict import as_forecaster  # noqa: PLC0415

    try:
        new = as_forecaster(candidate)
    except Exception as exc:  # noqa: BLE001 - not the busyness model at all
        raise RefreshRefused(f"it is not a busyness model: {_one_line(exc)}") from exc
    if serving is not None:
        old = as_forecaster(serving)
        for name in SHARED_PARAMETERS:
            if getattr(new, name, None) != getattr(old, name, None):
                raise RefreshRefused(
                    f"its {name} is {getattr(new, name, None)!r}, the serving model's"
                    f" {getattr(old, name, None)!r}"
                )
    check_predicts(new)


def with_state(base: Any, state: CountsState | None) -> Any:
    """``base`` knowing ``state``'s counts (``base`` itself without a state)."""
    return base if state is None else state.apply(base)


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, credentials masked, at most 300 characters."""
    lines = str(exc).strip().splitlines()
    return redact(f"{type(exc).__name__}: {lines[0] if lines else ''}")[:300]


def _serve(model: Any, **carried: Any) -> Served:
    from geo_busyness.serving.lookup import serve  # noqa: PLC0415 - loads scikit-learn

    return serve(model, **carried)


def _read_state(path: str) -> CountsState:
    from geo_busyness.model.counts_state import read_counts_state  # noqa: PLC0415

    return read_counts_state(path)


def _alias_version(name: str, alias: str) -> str | None:
    from geo_busyness.registry import alias_version  # noqa: PLC0415 - imports MLflow

    return alias_version(name, alias)


class Refresher:
    """Loads the first ``Served`` and keeps it fresh from one background thread.

    ``load`` loads a model location, ``current`` and ``publish`` read and replace the app's
    ``Served`` reference, ``resolve(name, alias)`` is the version an alias points at (the
    registry's, by default) and ``alert(event, summary, details)`` reports a refused version.
    """

    def __init__(
        self,
        settings: RefreshSettings,
        model_location: str,
        load: Callable[[str], Any],
        current: Callable[[], Served | None],
        publish: Callable[[Served], None],
        *,
        resolve: Callable[[str, str], str | None] = _alias_version,
        alert: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.model_location = model_location
        self.follow = followed_alias(model_location, settings)
        self._load, self._current, self._publish = load, current, publish
        self._resolve = resolve
        self._alert = alert or self._send_alert
        self._signature: tuple[str, ...] | None = None
        self._refused: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the first model
    def first_served(self) -> Served:
        """The model to start with, with the counts state applied when one can be read.

        Started on an alias with no version label, the alias is resolved first and that
        version loaded (``models:/name/N``), so the label names what serves.
        """
        location, version = self.model_location, self.settings.model_version
        named = alias_of(location)
        if named is not None and version is None:
            version = self._resolve(*named)
            if version is not None:
                location = f"models:/{named[0]}/{version}"
        base = self._load(location)
        state = self._first_state(base)
        return _serve(with_state(base, state), base=base, version=version, state=state)

    def _first_state(self, base: Any) -> CountsState | None:
        """The counts state to start with (None: none configured, none yet, or refused)."""
        path = self.settings.counts_state
        if not path:
            return None
        self._signature = self._signature_or_none()
        if self._signature is None:
            logger.info("No counts state at %s yet: serving the model's own counts", redact(path))
            return None
        try:
            state = _read_state(path)
            check_predicts(with_state(base, state))
        except Exception as exc:  # noqa: BLE001 - the artifact's own counts still serve
            self._log_refused_state(exc, base)
            return None
        return state

    # ------------------------------------------------------------------ polls
    def poll_counts(self) -> bool:
        """Serve the counts state if it changed since the last look; whether it now serves."""
        path = self.settings.counts_state
        with self._lock:
            served = self._current()
            if not path or served is None:
                return False
            signature = self._signature_or_none()
            if signature == self._signature:
                return False
            self._signature = signature
            if signature is None:
                logger.info("No counts state at %s (yet): serving the counts known", redact(path))
                return False
            started = time.perf_counter()
            try:
                state = _read_state(path)
                model = with_state(served.loaded, state)
                check_predicts(model)
                fresh = _serve(model, base=served.loaded, version=served.version, state=state)
            except Exception as exc:  # noqa: BLE001 - the old state keeps serving
                self._log_refused_state(exc, served.model)
                return False
            self._publish(fresh)
        logger.info(
            "Counts state %s serves: counts to %s (batches %s), swapped in %.2f s",
            redact(path),
            fresh.counts_end,
            ", ".join(state.batches) or "-",
            time.perf_counter() - started,
        )
        return True

    def poll_alias(self) -> bool:
        """Serve the followed alias' version if it moved; whether a new version now serves."""
        named = alias_of(self.follow)
        if named is None:
            return False
        with self._lock:
            version = self._resolve(*named)
            served = self._current()
            current = served.version if served is not None else None
            if version is None or version == current or version in self._refused:
                return False
            started = time.perf_counter()
            location = f"models:/{named[0]}/{version}"
            state = served.state if served is not None else None
            try:
                candidate = self._load(location)
                check_candidate(served.loaded if served is not None else None, candidate)
                model = with_state(candidate, state)
                check_predicts(model)
                fresh = _serve(model, base=candidate, version=version, state=state)
            except Exception as exc:  # noqa: BLE001 - the old version keeps serving
                self._refuse_version(version, current, exc)
                return False
            self._publish(fresh)
        logger.info(
            "Now serving %s version %s (was %s): loaded, checked and swapped in %.1f s",
            named[0],
            version,
            current,
            time.perf_counter() - started,
        )
        return True

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        """Poll in a background thread (when there is anything to poll)."""
        if self._thread is not None or not (self.settings.counts_state or self.follow):
            return
        self._thread = threading.Thread(target=self._run, name="refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (the poll under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        """Each poll when it is due, one after the other (never two swaps at once)."""
        from geo_busyness.serving.threads import limit_current_thread  # noqa: PLC0415

        limit_current_thread()
        polls: list[tuple[Callable[[], bool], float]] = []
        if self.settings.counts_state:
            polls.append((self.poll_counts, self.settings.counts_interval))
        if self.follow:
            polls.append((self.poll_alias, self.settings.follow_interval))
        due = [time.monotonic() + interval for _, interval in polls]
        while not self._stop.wait(max(0.0, min(due) - time.monotonic())):
            for index, (poll, interval) in enumerate(polls):
                if time.monotonic() < due[index]:
                    continue
                try:
                    poll()
                except Exception as exc:  # noqa: BLE001 - the thread must keep polling
                    logger.error("Refresh poll failed: %s", _one_line(exc))
                due[index] = time.monotonic() + interval

    # ------------------------------------------------------------------ refusals
    def _signature_or_none(self) -> tuple[str, ...] | None:
        try:
            return file_signature(str(self.settings.counts_state))
        except Exception as exc:  # noqa: BLE001 - storage unreachable: try at the next poll
            logger.warning(
                "Counts state %s cannot be checked: %s",
                redact(str(self.settings.counts_state)),
                _one_line(exc),
            )
            return self._signature

    def _log_refused_state(self, exc: BaseException, serving: Any) -> None:
        origin = getattr(serving, "origin", None)
        logger.error(
            "Counts state %s refused (%s); still serving counts to %s",
            redact(str(self.settings.counts_state)),
            _one_line(exc),
            origin,
        )

    def _refuse_version(self, version: str, current: str | None, exc: BaseException) -> None:
        self._refused.add(version)
        reason = _one_line(exc)
        logger.error(
            "Version %s of %s refused (%s); version %s keeps serving",
            version,
            redact(str(self.follow)),
            reason,
            current,
        )
        self._alert(
            SWAP_REFUSED_EVENT,
            f"The server refused version {version} ({redact(str(self.follow))});"
            f" version {current} keeps serving.",
            {"reasons": [reason], "refused_version": version, "serving_version": current},
        )

    def _send_alert(self, event: str, summary: str, details: dict[str, Any]) -> None:
        """Send through ``geo_busyness.operations.alerts`` when the settings carry an alerts block."""
        block = self.settings.alerts or {}
        if not block.get("alerts"):
            return
        from geo_busyness.operations.alerts.channels import send_alert  # noqa: PLC0415
        from geo_busyness.operations.alerts.message import Alert  # noqa: PLC0415

        try:
            send_alert(Alert(event, summary, details), block["alerts"], block.get("credentials"))
        except Exception as exc:  # noqa: BLE001 - an alert that cannot go out must not stop serving
            logger.warning("Alert %s not sent: %s", event, _one_line(exc))
