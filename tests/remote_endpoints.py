"""Remote services that fail the two ways a network does: nothing listening on the port (the
connection is refused at once), and a server that accepts connections and never answers (each
request waits for its read timeout)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from geo_busyness.testing import free_port

#: Every remote failure of issue #23 must come within this many seconds.
DEADLINE_S = 30.0


def dead_endpoint() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a server that accepts every connection and never sends
    a byte (a thread accepts and holds them); closed on exit."""
    with watched_silent_endpoint() as (url, _):
        yield url


@contextmanager
def watched_silent_endpoint() -> Iterator[tuple[str, threading.Event]]:
    """``silent_endpoint``'s URL, and an event set once it has accepted a first connection
    (a client got as far as calling it)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    held: list[socket.socket] = []
    stop, called = threading.Event(), threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return
            called.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", called
    finally:
        stop.set()
        thread.join(timeout=2)
        for connection in held:
            connection.close()
        listener.close()
