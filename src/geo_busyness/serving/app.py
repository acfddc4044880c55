"""The HTTP server: SageMaker's container contract as a small ASGI app (run by uvicorn).

- ``GET /ping``: 200 once the model is loaded, 503 while it loads (or if loading failed).
- ``POST /invocations``: a JSON or CSV body of query rows -> ``{"predictions": [...]}`` (or CSV
  when the Accept header asks only for it): per row ``h3_cell``, ``hour``,
  ``predicted_busyness`` (the mean), ``p10``/``p50``/``p90`` and ``horizon_hours``. A bad
  request gets a 4xx JSON error naming the problem; 5xx is kept for faults of the server or
  the model. ``{"instances": [...], "explain": true}`` (or a number of contributions, 0-10)
  adds to each answer the top SHAP feature contributions of the learned model
  (``geo_busyness.model.explain``; shap is imported on the first such request).
- ``GET /execution-parameters``: what SageMaker batch transform asks a container.
- ``GET /shadow``: shadow mode's counts (``serving/shadow.py``: the challenger answers the
  same queries off the response path and its answers are logged beside the champion's).

Forecasts start at the served model's origin (the hour after the last count it knows), so an
hour days after it gets a day- or week-ahead forecast (more than 168 h ahead: the week-ahead
forecast of the same hour of the week), and a known past hour its one-hour-ahead forecast.
Given a counts state (``Settings.refresh``), the server applies the latest published counts
and follows them as they are republished, so its nowcast moves with the day; started on (or
told to follow) an alias such as ``models:/geo-busyness@champion``, it serves each new version
the alias points at (``serving/refresh.py``). Every invocation's answer says the version
(``X-Model-Version``), the hour its counts end (``X-Counts-End``) and their age
(``X-Counts-Age-Seconds``); so does /ping's body.

Between model loads the answers of every known cell in each hour of the week after the
origin are fixed: the model's own prediction path computes them once, at load, into a lookup
table (``serving/lookup.py``), swapped with the model as one reference (``swap_model``, also
the hook for fresh counts). A small plainly valid JSON request whose every row the table holds
is answered on the event loop (parse, H3-index, look up, encode: tens of microseconds); any
other request takes the worker path below, where the table answers the rows it holds and the
model the others, with the same numbers, explanations and errors as the model alone.

The model loads in a background thread after start-up, so /ping answers at once. Parsing,
prediction and encoding run on one worker thread per process: the event loop stays free to
answer /ping during a long batch, and predictions of one process never compete for the GIL.
Invocations that arrive while the worker is busy are answered together (micro-batching): one
``predict_busyness`` call for all their rows, each request getting exactly its own answers.
Its cost is mostly per call, not per row, so this multiplies throughput under concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from geo_busyness.model.queries import check_known_area
from geo_busyness.redaction import redact
from geo_busyness.serving.asgi import (
    CLOSE,
    Receive,
    Send,
    busy_answer,
    read_body,
    respond,
    too_large,
)
from geo_busyness.serving.config import (  # noqa: F401 - ENV_* and Settings are app's API
    ENV_BODY_TIMEOUT,
    ENV_LOAD_TIMEOUT,
    ENV_MAX_BODY_BYTES,
    ENV_MAX_CONCURRENCY,
    ENV_MAX_DISTANCE_KM,
    ENV_MODEL,
    Settings,
)
from geo_busyness.serving.refresh import Refresher
from geo_busyness.serving.requests import (
    CSV,
    JSON,
    SUPPORTED_CONTENT_TYPES,
    Invocation,
    RequestError,
    check_csv_size,
    media_type,
    parse_invocation,
)
from geo_busyness.serving.responses import (
    encode_error,
    encode_predictions,
    explain_answers,
    response_type,
)
from geo_busyness.serving.shadow import Shadow
from geo_busyness.serving.threads import limit_current_thread

if TYPE_CHECKING:
    from geo_busyness.serving.lookup import Served

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Answer = tuple[int, bytes, str]  # status, body, media type
#: Bodies longer than this are not tried on the quick path: 8 plain rows take ~1 KB, and a
#: 1,000-row body would otherwise be read as JSON twice.
QUICK_MAX_BYTES = 4096


class ServingApp:
    """ASGI application answering /ping and /invocations for one loaded model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: The model and its lookup table, replaced as one reference (``swap_model``).
        self.served: Served | None = None
        self._load: asyncio.Future | None = None
        self._load_error: str | None = None
        self._queue: asyncio.Queue | None = None
        self._batcher: asyncio.Task | None = None
        self._carry: list[tuple[tuple[bytes, str, str], asyncio.Future]] = []
        self._open_invocations = 0
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="predict", initializer=limit_current_thread
        )
        self.shadow = Shadow(settings.shadow, self._load_from) if settings.shadow else None
        #: Follows the counts state and the model's alias (``serving/refresh.py``).
        self.refresher = Refresher(
            settings.refresh, settings.model, self._load_from, self._served, self._publish
        )

    # ------------------------------------------------------------------ model loading
    def _load_from(self, location: str) -> Any:
        if self.settings.loader is not None:
            return self.settings.loader(location)
        from geo_busyness.model.loading import load_model  # noqa: PLC0415 - imports MLflow

        return load_model(location)

    def _load_model(self) -> Served:
        return self.refresher.first_served()

    def _served(self) -> Served | None:
        return self.served

    def _publish(self, served: Served) -> None:
        self.served = served

    @property
    def model(self) -> Any:
        """The model answering (None until it is loaded)."""
        return self.served.model if self.served is not None else None

    @model.setter
    def model(self, model: Any) -> None:
        self.swap_model(model)

    def swap_model(self, model: Any) -> None:
        """Serve ``model`` (or nothing, for None): its lookup table is built in the calling
        thread, then one reference is replaced, so every request is answered wholly by the old
        model and table or wholly by the new. Call it off the event loop (``asyncio.to_thread``)
        when the model or its counts change; requests keep being answered meanwhile."""
        self.served = None if model is None else _serve(model)

    def start_loading(self) -> None:
        """Load the model in the background; /ping turns 200 when it is ready."""
        if self._load is not None:
            return
        if self.shadow is not None:
            self.shadow.start()
        started = time.perf_counter()

        def done(future: asyncio.Future) -> None:
            if future.exception() is not None:
                self._load_error = redact(
                    f"{type(future.exception()).__name__}: {future.exception()}"
                )
                logger.error(
                    "Model %s failed to load: %s", redact(self.settings.model), self._load_error
                )
                self.refresher.start()  # a followed alias that moves may still bring one
            else:
                self.served = future.result()
                logger.info(
                    "Model %s (version %s) loaded in %.1f s",
                    redact(self.settings.model),
                    self.served.version,
                    time.perf_counter() - started,
                )
                self.refresher.start()

        self._load = asyncio.get_running_loop().run_in_executor(None, self._load_model)
        self._load.add_done_callback(done)

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.start_loading()
        path, method = scope["path"], scope["method"]
        if path == "/ping":
            await self._ping(send)
        elif path == "/invocations":
            if method != "POST":
                await respond(send, 405, encode_error(405, "Use POST for /invocations."))
            elif self._open_invocations >= self.settings.max_concurrency:
                busy = encode_error(503, "Too many open invocations; retry shortly.")
                await respond(send, 503, busy, [(b"retry-after", b"1"), *CLOSE])
            else:
                self._open_invocations += 1
                try:
                    await self._invocations(scope, receive, send)
                finally:
                    self._open_invocations -= 1
        elif path == "/execution-parameters" and method == "GET":
            await respond(send, 200, orjson.dumps(self.execution_parameters()))
        elif path == "/shadow" and method == "GET":
            stats = self.shadow.stats() if self.shadow else {"state": "off"}
            await respond(send, 200, orjson.dumps(stats))
        else:
            await respond(send, 404, encode_error(404, f"No route {method} {path}."))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_loading()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._batcher is not None:
                    self._batcher.cancel()
                self._worker.shutdown(wait=False, cancel_futures=True)
                if self.shadow is not None:
                    await asyncio.to_thread(self.shadow.stop)
                await asyncio.to_thread(self.refresher.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _ping(self, send: Send) -> None:
        if (busy := busy_answer(self._open_invocations, self.settings.max_concurrency)) is not None:
            await respond(send, 503, busy)  # every invocation slot is taken
            return
        served = self.served
        if served is not None:
            await respond(send, 200, orjson.dumps({"status": "ready", **serving_facts(served)}))
        elif self._load_error is not None:
            # The cause (paths, URIs) is in the server's log, never in an answer.
            await respond(send, 503, b'{"status":"failed","error":"The model failed to load."}')
        else:
            await respond(send, 503, b'{"status":"loading"}')

    def execution_parameters(self) -> dict[str, Any]:
        return {
            "MaxConcurrentTransforms": 1,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, self.settings.max_body_bytes // (1024 * 1024)),
        }

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {key.lower(): value for key, value in scope["headers"]}
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        accept = headers.get(b"accept", b"").decode("latin-1")
        limit = self.settings.max_body_bytes
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            await respond(send, 400, encode_error(400, "Invalid Content-Length header."))
            return
        if declared > limit:
            await respond(send, 413, too_large(declared, limit))
            return
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                body = await read_body(receive, limit)
        except TimeoutError:
            slow = f"The request body did not arrive within {self.settings.body_timeout:g} s."
            await respond(send, 408, encode_error(408, slow), list(CLOSE))
            return
        refusal = _refused_body(body, content_type, limit)
        if refusal is not None:
            await respond(send, *refusal)
            return
        if self.model is None:
            problem = await self._wait_for_model()
            if problem:
                await respond(send, 503, encode_error(503, problem), [(b"retry-after", b"5")])
                return
        served = self.served  # the answer and its headers come from the same model
        quick = self.quick_answer(body, content_type, accept, served)
        if quick is not None:
            await respond(send, 200, quick, served_headers(served))
            return
        (status, payload, media), served = await self._submit(body, content_type, accept)
        headers = [(b"content-type", media.encode()), *served_headers(served)]
        await respond(send, status, payload, headers)

    # ------------------------------------------------------------------ micro-batching
    async def _submit(
        self, body: bytes, content_type: str, accept: str
    ) -> tuple[Answer, Served | None]:
        """Queue one invocation for the batcher; its answer and what answered it."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._batcher = asyncio.get_running_loop().create_task(self._batch_loop())
        job = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(((body, content_type, accept), job))
        return await job

    async def _batch_loop(self) -> None:
        """Take every invocation waiting while the worker was busy and answer them in one go."""
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry.pop() if self._carry else await self._queue.get()
            batch, size = [first], len(first[0][0])
            while not self._queue.empty() and len(batch) < self.settings.max_batch_requests:
                nxt = self._queue.get_nowait()
                if size + len(nxt[0][0]) > self.settings.max_body_bytes:
                    self._carry.append(nxt)  # first in the next batch
                    break
                batch.append(nxt)
                size += len(nxt[0][0])
            requests = [request for request, _ in batch]
            if len(batch) > 1:
                logger.debug("Answering %d queued invocations together", len(batch))
            served = self.served  # one model for the batch, whatever swaps meanwhile
            try:
                answers = await loop.run_in_executor(
                    self._worker, self.invoke_many, requests, served
                )
            except Exception as exc:  # noqa: BLE001 - invoke_many answers faults itself
                # One line: a traceback rendered here would stall the event loop (and /ping).
                logger.error("Batch of %d invocation(s) failed: %s", len(batch), _one_line(exc))
                failed = (500, encode_error(500, f"Server fault: {type(exc).__name__}."), JSON)
                answers = [failed] * len(batch)
            for (_, job), result in zip(batch, answers, strict=True):
                if not job.done():
                    job.set_result((result, served))

    async def _wait_for_model(self) -> str | None:
        """None once the model is loaded, else why it is not (load failed or timed out)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._load), self.settings.load_timeout)
        except TimeoutError:
            return "The model is still loading; retry shortly."
        except Exception:  # noqa: BLE001 - reported through _load_error
            pass
        if self.model is None:
            return "The model failed to load; see the server's log."
        return None

    def quick_answer(
        self, body: bytes, content_type: str, accept: str, served: Served | None = None
    ) -> bytes | None:
        """The JSON body answering a request the lookup table answers alone (a small, plainly
        valid JSON request, every row in the table), or None: the worker path answers it.

        Off in shadow mode (the challenger is asked the answered query rows), and where the
        known-area check could refuse a point of a held cell (a distance below a cell's size).
        """
        served = self.served if served is None else served
        table = served.table if served is not None else None
        if (
            table is None
            or self.shadow is not None
            or SUPPORTED_CONTENT_TYPES.get(media_type(content_type)) != JSON
            or len(body) > min(self.settings.max_body_bytes, QUICK_MAX_BYTES)
            or not table.covers_area_check(self.settings.max_distance_km)
        ):
            return None
        try:
            if response_type(accept) != JSON:
                return None
            return table.quick_answer(body)
        except Exception as exc:  # noqa: BLE001 - the worker path answers it (and words errors)
            _log_fault("The lookup failed; the request goes the worker path", exc)
            return None

    def invoke(self, body: bytes, content_type: str, accept: str) -> Answer:
        """Status, body and media type of the answer to one invocation."""
        quick = self.quick_answer(body, content_type, accept)
        if quick is not None:
            return 200, quick, JSON
        return self.invoke_many([(body, content_type, accept)])[0]

    def invoke_many(
        self, requests: list[tuple[bytes, str, str]], served: Served | None = None
    ) -> list[Answer]:
        """Answers to invocations (runs on the worker thread).

        Requests are parsed one by one (a bad one gets its own 4xx); the valid ones are
        predicted in one ``predict_busyness`` call, whose answers are per query row, so each
        request gets exactly the numbers it would get alone. A request asking for explanations
        gets them for its own rows (``_encode``). In shadow mode the answered query rows and
        answers are then handed to the challenger's thread (never waited for).
        """
        # One model and table for the whole batch, whatever swaps meanwhile.
        served = self.served if served is None else served
        answers: list[Answer | None] = [None] * len(requests)
        answered: tuple[list[pd.DataFrame], list[pd.DataFrame]] = ([], [])
        valid: list[tuple[int, Invocation, str]] = []
        for index, (body, content_type, accept) in enumerate(requests):
            try:
                media = response_type(accept)
                invocation = parse_invocation(body, content_type, self.settings.max_body_bytes)
                if not self._area_checked(served, invocation.queries):
                    check_known_area(
                        invocation.queries, served.cells, self.settings.max_distance_km
                    )
            except RequestError as exc:
                answers[index] = (exc.status, encode_error(exc.status, exc.message), JSON)
            except Exception as exc:  # noqa: BLE001 - one unreadable body fails only itself
                # The parser words every problem it knows as a RequestError; anything else is a
                # body it did not foresee. It is answered 400 alone, never failing batch-mates.
                _log_fault("Unreadable request body", exc)
                message = f"Could not read the request body ({type(exc).__name__})."
                answers[index] = (400, encode_error(400, message), JSON)
            else:
                valid.append((index, invocation, media))
        if len(valid) > 1:
            try:
                combined = answer(
                    served, pd.concat([i.queries for _, i, _ in valid], ignore_index=True)
                )
            except Exception:  # noqa: BLE001 - retried one by one to isolate the fault
                logger.warning("Batched prediction failed; answering its requests one by one")
            else:
                bounds = np.cumsum([0] + [len(i.queries) for _, i, _ in valid])
                for (index, invocation, media), start, stop in zip(
                    valid, bounds[:-1], bounds[1:], strict=True
                ):
                    part = combined.iloc[start:stop]
                    answers[index] = self._encode(served, invocation, part, media)
                answered[0].extend(i.queries for _, i, _ in valid)
                answered[1].append(combined)
                valid = []
        for index, invocation, media in valid:
            answers[index] = self._predict_one(served, invocation, media, answered)
        if self.shadow is not None:  # the champion's origin: the challenger answers from it too
            self.shadow.submit(*answered, origin=getattr(served.model, "origin", None))
        return answers

    def _area_checked(self, served: Served, queries: pd.DataFrame) -> bool:
        """Whether the known-area check can pass over ``queries`` unasked: the lookup table
        holds every row, and no point of a held cell can fail the check."""
        table = served.table
        return (
            table is not None
            and table.covers_area_check(self.settings.max_distance_km)
            and table.holds_all(queries)
        )

    def _predict_one(
        self,
        served: Served,
        invocation: Invocation,
        media: str,
        answered: tuple[list[pd.DataFrame], list[pd.DataFrame]] | None = None,
    ) -> Answer:
        try:
            predicted = answer(served, invocation.queries)
        except Exception as exc:  # noqa: BLE001 - answered 500, logged once per kind
            _log_fault(f"Prediction failed for {len(invocation.queries)} query row(s)", exc)
            return 500, encode_error(500, f"Prediction failed: {type(exc).__name__}."), JSON
        if answered is not None:
            answered[0].append(invocation.queries)
            answered[1].append(predicted)
        return self._encode(served, invocation, predicted, media)

    def _encode(
        self, served: Served, invocation: Invocation, answers: pd.DataFrame, media: str
    ) -> Answer:
        """The 200 answer to one invocation, explained when it asked; a failed explanation
        fails only its own request (501 when this server lacks shap)."""
        if not invocation.explain:
            return 200, encode_predictions(answers, media), media
        try:
            explained = explain_answers(
                served.model, invocation.queries, answers, invocation.explain
            )
        except ImportError as exc:
            _log_fault("Explanations are unavailable", exc)
            missing = "Explanations need the 'shap' package, which this server lacks."
            return 501, encode_error(501, missing), JSON
        except Exception as exc:  # noqa: BLE001 - answered 500, logged once per kind
            _log_fault(f"Explanation failed for {len(invocation.queries)} query row(s)", exc)
            return 500, encode_error(500, f"Explanation failed: {type(exc).__name__}."), JSON
        body = encode_predictions(explained.answers, media, explained.explanations)
        return 200, body, media


#: Exception types whose traceback was already logged: each kind is logged in full once per
#: process, then in one line (a client repeating a bad request cannot flood the log).
_TRACED: set[str] = set()


def _refused_body(body: bytes | None, content_type: str, limit: int) -> tuple[int, bytes] | None:
    """(status, answer) for a body refused before it is queued: too large, or a CSV too wide
    (counted here, on the event loop, in a few ms for 6 MB: it never waits in the prediction
    thread's queue ahead of valid requests); None for a body to answer."""
    if body is None:
        return 413, too_large(limit + 1, limit)
    if media_type(content_type) == CSV:
        try:
            check_csv_size(body)
        except RequestError as error:
            return error.status, encode_error(error.status, error.message)
    return None


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _log_fault(what: str, exc: BaseException) -> None:
    """Log a fault: the first of its kind with its traceback, later ones in one line."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if kind in _TRACED:
        logger.warning("%s: %s", what, _one_line(exc))
        return
    _TRACED.add(kind)
    logger.warning(
        "%s: %s (traceback logged once for this kind)", what, _one_line(exc), exc_info=exc
    )


def answer(served: Served, queries: pd.DataFrame) -> pd.DataFrame:
    """``predict_busyness`` of the served model: the rows its lookup table holds from the
    table, the others from the model (imported on first use: it loads scikit-learn)."""
    if served.table is not None:
        return served.table.answer(served.model, queries)
    from geo_busyness.model.predict import predict_busyness  # noqa: PLC0415

    return predict_busyness(served.model, queries)


def _serve(model: Any) -> Served:
    """``lookup.serve``, imported on first use (it loads scikit-learn)."""
    from geo_busyness.serving.lookup import serve  # noqa: PLC0415

    return serve(model)


def serving_facts(served: Served, now: float | None = None) -> dict[str, Any]:
    """What serves: the model version, the hour its counts end (UTC, ISO) and their age in
    seconds (``now``: Unix seconds), and the counts state's batches when one is applied."""
    end = served.counts_end
    facts: dict[str, Any] = {"model_version": served.version}
    if end is not None:
        now = time.time() if now is None else now
        facts["counts_end"] = end.isoformat()
        facts["counts_age_seconds"] = max(0, int(now - end.timestamp()))
    facts["counts_state"] = list(served.state.batches) if served.state is not None else None
    return facts


def served_headers(served: Served | None, now: float | None = None) -> list[tuple[bytes, bytes]]:
    """``X-Model-Version``, ``X-Counts-End`` and ``X-Counts-Age-Seconds`` of an answer (those
    known: none before a model is loaded); ``now`` in Unix seconds."""
    if served is None:
        return []
    headers = list(served.fixed_headers)
    end = served.counts_end_seconds
    if end is not None:
        age = max(0, int((time.time() if now is None else now) - end))
        headers.append((b"x-counts-age-seconds", str(age).encode()))
    return headers


def create_app() -> ServingApp:
    """The app for the model named in the environment (uvicorn factory for worker processes)."""
    return ServingApp(Settings.from_env())
