"""uvicorn's httptools protocol with a header-read deadline (slowloris).

uvicorn has no timeout for reading a request's headers: a client that opens a connection and
sends its headers a byte at a time (or never) holds the connection for as long as it likes.
This protocol closes a connection whose request headers are not complete within
``GEO_BUSYNESS_HEADER_TIMEOUT`` seconds (default 10) of the connection or of the request's
first byte. Body reads have their own deadline in the app (``Settings.body_timeout``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ENV_HEADER_TIMEOUT = "GEO_BUSYNESS_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that drops connections whose headers arrive too slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = float(os.environ.get(ENV_HEADER_TIMEOUT) or DEFAULT_HEADER_TIMEOUT)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
