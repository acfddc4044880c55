"""ASGI plumbing of the server: reading a request body within a limit, sending an answer,
saying when the server cannot take work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from geo_busyness.serving.requests import JSON
from geo_busyness.serving.responses import encode_error

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", JSON.encode())]
#: Ends the connection after the answer (uvicorn closes it): for clients that are not reading.
CLOSE = ((b"connection", b"close"),)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def busy_answer(open_invocations: int, limit: int) -> bytes | None:
    """/ping's 503 body while all ``limit`` invocation slots are taken (a new invocation would
    be refused), else None: the server can take work."""
    if open_invocations < limit:
        return None
    reason = f"All {limit} invocation slots are taken; new invocations get 503. Retry shortly."
    return orjson.dumps({"status": "busy", "error": reason})


def too_large(size: int, limit: int) -> bytes:
    """The 413 answer's body."""
    return encode_error(413, f"Request body of {size} bytes is over the limit of {limit} bytes.")


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send one whole answer (JSON content type unless ``headers`` name another)."""
    headers = headers or []
    if not any(name == b"content-type" for name, _ in headers):
        headers = [*JSON_HEADERS, *headers]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
