"""uvicorn's httptools protocol with a deadline and a bound for every stage of a request.

uvicorn hands a request to the app as soon as its headers are in and lets the app wait for
the body; it has no deadline for headers or answers. Hostile clients used that: 300
connections announcing a body and sending none took every invocation slot (valid queries got
503 for 20 s, renewable), and clients that never read a 6 MB answer kept it buffered for good.
This protocol gives each stage of a request its own deadline and bound (``Limits``):

- **headers**: complete within ``header_timeout`` of the connection or of the request's first
  byte, and at most ``max_header_bytes``; else the connection closes (431 when too large).
- **body**: a request that announces a body reaches the app only once all of it is here.
  Meanwhile its connection waits in the body stage, for at most ``body_timeout`` (then 408,
  closed). At most ``max_waiting_bodies`` connections and ``max_waiting_body_bytes`` bytes wait
  per process: past either bound the connection that has waited longest is answered 503 and
  closed. Slow bodies therefore never hold the app's invocation slots
  (``Settings.max_concurrency``), and a body that comes with its headers never waits.
- **answer**: an answer the client does not take (over ``KERNEL_SEND_BUFFER`` in the kernel
  and the transport's high-water mark) must drain within ``send_timeout``, and the answers
  waiting for their clients hold at most ``max_unsent_bytes`` per process (past it the
  longest-waiting connection goes first); else the connection is reset, which frees its
  buffers at once (a close would keep them until the client reads).

Each limit is an environment variable (``ENV_*``; the body's are ``Settings``' too), set by
``python -m geo_busyness.serving`` for its worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from geo_busyness.serving.config import ENV_BODY_TIMEOUT, ENV_MAX_BODY_BYTES
from geo_busyness.serving.requests import DEFAULT_MAX_BODY_BYTES
from geo_busyness.serving.responses import encode_error

logger = logging.getLogger(__name__)

ENV_HEADER_TIMEOUT = "GEO_BUSYNESS_HEADER_TIMEOUT"
ENV_SEND_TIMEOUT = "GEO_BUSYNESS_SEND_TIMEOUT"
ENV_MAX_WAITING_BODIES = "GEO_BUSYNESS_MAX_WAITING_BODIES"
ENV_MAX_UNSENT_BYTES = "GEO_BUSYNESS_MAX_UNSENT_BYTES"
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 20.0
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_MAX_WAITING_BODIES = 1024
DEFAULT_MAX_UNSENT_BYTES = 128 * 1024 * 1024
#: Request line and headers of one request (nginx's default for large headers is 32 KiB).
MAX_HEADER_BYTES = 64 * 1024
#: Bodies the body stage may hold at once, in units of the largest accepted body.
WAITING_BODIES_IN_BYTES = 16
#: The kernel's send buffer of a connection (it autotunes up to 4 MB otherwise): an answer
#: larger than this waits in the transport's buffer, under the send deadline and budget.
KERNEL_SEND_BUFFER = 256 * 1024
#: SO_LINGER on, 0 s: close() resets the connection and discards what is unsent.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class Limits:
    """The deadlines (s) and bounds of one server process's connections."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    send_timeout: float = DEFAULT_SEND_TIMEOUT
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_waiting_bodies: int = DEFAULT_MAX_WAITING_BODIES
    max_unsent_bytes: int = DEFAULT_MAX_UNSENT_BYTES

    @property
    def max_waiting_body_bytes(self) -> int:
        return WAITING_BODIES_IN_BYTES * self.max_body_bytes

    @classmethod
    def from_env(cls) -> Limits:
        """The limits the environment sets (defaults where unset or empty)."""
        return cls(
            header_timeout=_env_float(ENV_HEADER_TIMEOUT, DEFAULT_HEADER_TIMEOUT),
            body_timeout=_env_float(ENV_BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT),
            send_timeout=_env_float(ENV_SEND_TIMEOUT, DEFAULT_SEND_TIMEOUT),
            max_body_bytes=_env_int(ENV_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES),
            max_waiting_bodies=_env_int(ENV_MAX_WAITING_BODIES, DEFAULT_MAX_WAITING_BODIES),
            max_unsent_bytes=_env_int(ENV_MAX_UNSENT_BYTES, DEFAULT_MAX_UNSENT_BYTES),
        )


def _env_float(name: str, default: float) -> float:
    """A positive number from the environment variable ``name`` (``default`` when unset)."""
    return _env_positive(name, default, float)


def _env_int(name: str, default: int) -> int:
    """A positive whole number from the environment variable ``name`` (``default`` when unset)."""
    return int(_env_positive(name, default, int))


def _env_positive(name: str, default: float, kind: type[int] | type[float]) -> float:
    text = os.environ.get(name) or ""
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise ValueError(f"{name}={text!r}: expected a positive {kind.__name__}.")
    return value


class Stage:
    """The connections in one stage of their requests, oldest first, and the bytes they hold
    (kept by the members)."""

    def __init__(self) -> None:
        self._members: dict[GuardedHttpToolsProtocol, None] = {}
        self.bytes = 0

    def add(self, member: GuardedHttpToolsProtocol) -> None:
        self._members[member] = None

    def discard(self, member: GuardedHttpToolsProtocol) -> None:
        self._members.pop(member, None)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def __len__(self) -> int:
        return len(self._members)

    def oldest(self) -> GuardedHttpToolsProtocol:
        return next(iter(self._members))

    def oldest_first(self) -> Iterator[GuardedHttpToolsProtocol]:
        return iter(list(self._members))


#: The stages of one process (uvicorn runs one event loop per worker process).
WAITING_BODIES = Stage()
UNSENT_ANSWERS = Stage()


def error_response(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 answer with the app's JSON error body, closing the connection."""
    body = encode_error(status, message)
    head = (
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % len(body)
    )
    return STATUS_LINE[status] + head + body


class _Warnings:
    """Cut connections, logged at most once a minute per kind with the count so far."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.counts: dict[str, int] = {}
        self.logged: dict[str, float] = {}

    def cut(self, why: str) -> None:
        self.counts[why] = self.counts.get(why, 0) + 1
        now = time.monotonic()
        if now - self.logged.get(why, -self.every) >= self.every:
            logger.warning("Connections cut (%s): %d so far", why, self.counts[why])
            self.logged[why] = now


CUTS = _Warnings()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with deadlines and bounds for headers, bodies and answers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = Limits.from_env()
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        #: The request (and the app to run) whose body is still arriving.
        self._waiting: tuple[RequestResponseCycle, Any] | None = None
        self._waiting_bytes = 0
        self._body_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # what the kernel may hold for the client: the rest waits here
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
        self._arm_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_headers()
        self._stop_waiting()
        self._leave_unsent()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._waiting is not None:
            self.transport.close()
            return
        super().shutdown()

    # ---------------------------------------------------------------- headers
    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._header_timer is not None and self._header_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"Request headers over {self.limits.max_header_bytes} bytes.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_headers()

    def on_headers_complete(self) -> None:
        self._disarm_headers()
        self._header_bytes = 0
        super().on_headers_complete()

    def _arm_headers(self) -> None:
        # The bytes are not reset here: this runs while the chunk that began the request
        # (already counted, when the stage was on) is being parsed.
        self._disarm_headers()
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout, self._headers_too_slow
        )

    def _disarm_headers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        CUTS.cut("headers too slow")
        if not self.transport.is_closing():
            self.transport.close()

    # ---------------------------------------------------------------- body
    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """Run the app now if the request has its whole body (or none, or one too large to
        wait for: the app answers 413); else once the body is in (``on_message_complete``)."""
        if cycle.more_body and self._announces_body(cycle) and not self._declared_too_large(cycle):
            self._wait_for_body(cycle, app)
        else:
            super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        if self._waiting is None:
            super().on_body(body)
            return
        cycle = self._waiting[0]
        cycle.body += body  # no flow control: the app is not reading yet
        cycle.message_event.set()
        self._waiting_bytes += len(body)
        WAITING_BODIES.bytes += len(body)
        if len(cycle.body) > self.limits.max_body_bytes:
            self._start_waiting()  # the app refuses it (413) as it reads
            return
        self._evict_waiting_bodies()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._waiting is not None and not self._waiting[0].more_body:
            self._start_waiting()

    @staticmethod
    def _announces_body(cycle: RequestResponseCycle) -> bool:
        headers = dict(cycle.scope["headers"])
        return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"

    def _declared_too_large(self, cycle: RequestResponseCycle) -> bool:
        declared = dict(cycle.scope["headers"]).get(b"content-length", b"0")
        return declared.isdigit() and int(declared) > self.limits.max_body_bytes

    def _wait_for_body(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._waiting = (cycle, app)
        self._waiting_bytes = len(cycle.body)
        WAITING_BODIES.add(self)
        WAITING_BODIES.bytes += self._waiting_bytes
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_too_slow)
        if cycle.waiting_for_100_continue:  # the client waits for this before its body
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        self._evict_waiting_bodies()

    def _evict_waiting_bodies(self) -> None:
        """Answer 503 to the longest-waiting connections while the stage is over a bound."""
        limits = self.limits
        while (
            len(WAITING_BODIES) > limits.max_waiting_bodies
            or WAITING_BODIES.bytes > limits.max_waiting_body_bytes
        ):
            CUTS.cut("too many bodies arriving")
            WAITING_BODIES.oldest()._refuse(  # noqa: SLF001 - the same class
                503, "Too many requests are sending their bodies; retry shortly."
            )

    def _start_waiting(self) -> None:
        waiting = self._stop_waiting()
        if waiting is not None:
            super()._start_asgi_task(*waiting)

    def _stop_waiting(self) -> tuple[RequestResponseCycle, Any] | None:
        """Take the waiting request out of the body stage (None if there is none)."""
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            WAITING_BODIES.discard(self)
            WAITING_BODIES.bytes -= self._waiting_bytes
            self._waiting_bytes = 0
        return waiting

    def _body_too_slow(self) -> None:
        self._body_timer = None
        CUTS.cut("body too slow")
        self._refuse(408, f"The request body did not arrive within {self.limits.body_timeout:g} s.")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close: the request never reaches the app."""
        self._disarm_headers()
        waiting = self._stop_waiting()
        if waiting is not None:
            waiting[0].response_complete = True  # uvicorn ignores the rest of this request
        if not self.transport.is_closing():
            self.transport.write(error_response(status, message))
            self.transport.close()

    # ---------------------------------------------------------------- answer
    def pause_writing(self) -> None:
        """The client is not taking the answer as fast as it is written: start its clock."""
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout, self._send_too_slow)
        UNSENT_ANSWERS.add(self)
        unsent = sum(member.unsent_bytes() for member in UNSENT_ANSWERS.oldest_first())
        for oldest in UNSENT_ANSWERS.oldest_first():
            if unsent <= self.limits.max_unsent_bytes:
                break
            unsent -= oldest.unsent_bytes()
            CUTS.cut("too many unread answers")
            oldest._abort_soon()  # noqa: SLF001 - the same class

    def resume_writing(self) -> None:
        self._leave_unsent()
        super().resume_writing()

    def unsent_bytes(self) -> int:
        """Bytes of answers written but not yet taken by the client's socket."""
        return 0 if self.transport.is_closing() else self.transport.get_write_buffer_size()

    def _send_too_slow(self) -> None:
        self._send_timer = None
        CUTS.cut("answer not read in time")
        self._abort_soon()

    def _abort_soon(self) -> None:
        """Drop the connection and its buffers (after the current callback: the app may be
        in the middle of a write)."""
        self._leave_unsent()
        self.loop.call_soon(self._abort)

    def _abort(self) -> None:
        """Reset the connection: without a zero linger, the kernel would keep the unsent
        bytes (megabytes) queued behind a FIN for a client that never reads them."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()

    def _leave_unsent(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        UNSENT_ANSWERS.discard(self)
