"""Progress lines with an estimate for steps that take long enough to wonder about.

``Progress`` counts finished parts of a step (folds, fits, row chunks) and logs, at most every
``every_s`` seconds, ``"fit_candidates: 3/8 fits, ~40 s left"``; a step that ends before the
first line is due logs nothing, so short runs (tests, small data) stay as quiet as before.
When it has logged, it ends with ``"fit_candidates: 8/8 fits in 52 s"``. Plain ``logging``:
no progress bar, nothing written to the terminal directly, so a piped log reads line by line.

``progress`` wraps an iterable with one; ``row_chunks`` splits a vectorised computation over
many rows into parts it can count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

#: Seconds between two progress lines of one step (the first one comes this late too).
EVERY_S = 10.0

_logger = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """``seconds`` as a reader says it: ``<1 s``, ``40 s``, ``3 min``, ``1 h 5 min``."""
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def estimate_left(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the pace so far (None before the first part is done)."""
    if done <= 0:
        return None
    return elapsed / done * max(total - done, 0)


class Progress:
    """A step's progress: ``advance()`` after each part; a line at most every ``every_s``."""

    def __init__(
        self,
        step: str,
        total: int,
        unit: str,
        *,
        every_s: float = EVERY_S,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.step, self.total, self.unit = step, int(total), unit
        self.every_s, self.clock = every_s, clock
        self.logger = logger or _logger
        self.done = 0
        self.lines = 0
        self.started = clock()
        self._last_line = self.started

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            self.finish()

    def line(self) -> str:
        """What the step has done and the estimate of what is left."""
        elapsed = self.clock() - self.started
        left = estimate_left(self.done, self.total, elapsed)
        tail = "" if left is None else f", ~{duration(left)} left"
        return f"{self.step}: {self.done}/{self.total} {self.unit}{tail}"

    def advance(self, parts: int = 1) -> None:
        """Count ``parts`` more as done; log a line when one is due."""
        self.done += parts
        now = self.clock()
        if now - self._last_line >= self.every_s and self.done < self.total:
            self.logger.info(self.line())
            self.lines += 1
            self._last_line = now

    def finish(self) -> None:
        """The closing line (only when a progress line was logged: short steps stay quiet)."""
        if self.lines:
            elapsed = self.clock() - self.started
            self.logger.info(
                "%s: %d/%d %s in %s", self.step, self.done, self.total, self.unit, duration(elapsed)
            )


def progress(
    items: Iterable[Item],
    step: str,
    unit: str,
    *,
    total: int | None = None,
    every_s: float = EVERY_S,
    logger: logging.Logger | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Item]:
    """``items`` one by one; each counts as done when the next is asked for (or at the end).

    ``total`` defaults to ``len(items)``: give it for an iterator without a length.
    """
    count = total if total is not None else len(items)  # type: ignore[arg-type]
    tracker = Progress(step, count, unit, every_s=every_s, logger=logger, clock=clock)
    for item in items:
        yield item
        tracker.advance()
    tracker.finish()


def row_chunks(n_rows: int, chunk_rows: int) -> list[slice]:
    """``[0, n_rows)`` as consecutive slices of at most ``chunk_rows`` rows (none when empty)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}.")
    return [slice(start, min(start + chunk_rows, n_rows)) for start in range(0, n_rows, chunk_rows)]
