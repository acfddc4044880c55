"""Every line of a raw CSV accounted for: a line pandas' parser cannot read as one row (a stray
quote that would fold the lines after it into one value, a carriage return inside it, more than
``MAX_LINE_BYTES``) or a blank line (which it would skip) is set aside with its reason while the
file streams through in blocks (``AuditedLines``), and comes back as a row of nulls with
``LINE_FAULT`` and ``LINE_TEXT`` set (``CSVDataset`` in ``datasets.py`` reads through it).
"""

from __future__ import annotations

import io
from collections import deque
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from kedro.io import DatasetError
from pandas.io.common import infer_compression

from geo_busyness.schemas import (
    BLANK_LINE,
    LINE_FAULT,
    LINE_FAULTS,
    LINE_TEXT,
    LINE_TOO_LONG,
    STRAY_LINE_BREAK,
    UNBALANCED_QUOTE,
)

#: Bytes of a raw CSV line beyond which it is not read (``CSVDataset(max_line_bytes=...)``).
MAX_LINE_BYTES = 65_536
#: Bytes of a faulty line kept in ``LINE_TEXT``.
LINE_TEXT_BYTES = 1_024
#: Bytes read (and audited) per step: bounds memory whatever the file's size.
_BLOCK_BYTES = 1 << 20
_NL, _CR, _SPACE, _TAB = 10, 13, 32, 9
_UTF8_BOM = b"\xef\xbb\xbf"
#: read_csv options that keep one row per non-blank line, with their neutral values: with any
#: other value (skiprows, comment, quoting...) the file is read as pandas reads it, unaudited.
_ONE_ROW_PER_LINE: dict[str, tuple[Any, ...]] = {
    "header": (0, "infer"),
    "names": (None,),
    "index_col": (None, False),
    "engine": (None, "c"),
    "skiprows": (None, 0),
    "skipfooter": (0,),
    "nrows": (None,),
    "comment": (None,),
    "lineterminator": (None,),
    "quoting": (0,),
    "doublequote": (True,),
    "escapechar": (None,),
    "skip_blank_lines": (True,),
    "skipinitialspace": (False,),
    "delim_whitespace": (False,),
    "dialect": (None,),
    "on_bad_lines": ("error",),
    "chunksize": (None,),
    "iterator": (False,),
}
#: Compressions read through fsspec (the others are read as pandas reads them, unaudited).
_STREAM_CODECS = ("gzip", "bz2", "xz")


def _byte(text: Any) -> int | None:
    """The one ASCII byte ``text`` is, or None."""
    return ord(text) if isinstance(text, str) and len(text) == 1 and ord(text) < 128 else None


def _ascii_compatible(encoding: str) -> bool:
    """Whether ``encoding`` writes ASCII as ASCII (UTF-8, Latin-1...; not UTF-16)."""
    sample = "\n\r\t ,;|\"'"
    try:
        encoded = sample.encode(encoding)
    except (LookupError, UnicodeError):
        return False
    return encoded.endswith(sample.encode("ascii")) and len(encoded) <= len(sample) + 3  # a BOM


def _blank_lines(data: np.ndarray, starts: np.ndarray, length: np.ndarray, sep: int) -> np.ndarray:
    """Lines pandas skips: empty, or only spaces and tabs (unless one is the separator)."""
    blank = length == 0
    spaces = [byte for byte in (_SPACE, _TAB) if byte != sep]
    first = data[np.minimum(starts, len(data) - 1)]
    led = np.zeros(len(starts), dtype=bool)
    for space in spaces:
        led |= first == space
    if (led & ~blank).any():  # rare: count those lines' spaces
        white = np.add.reduceat(np.isin(data, spaces), starts, dtype=np.int64)
        blank |= white == length
    return blank


def _lines_with_stray_cr(data: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines holding a carriage return that does not end them (pandas would split there)."""
    returns = np.flatnonzero(data == _CR)
    after = returns + 1
    stray = returns[(after < len(data)) & (data[np.minimum(after, len(data) - 1)] != _NL)]
    return np.searchsorted(ends, stray)


def _lines_with_bad_quotes(  # noqa: PLR0913, PLR0917 - the line table's columns
    data: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    ends: np.ndarray,
    sep: int,
    quote: int,
) -> np.ndarray:
    """Lines whose quotes do not each open a field (at its start) and close it (before a
    separator or the line's end), ``""`` inside a field counting as a close and an open: on
    every other line pandas' parser ends the row at the line's end."""
    quotes = np.flatnonzero(data == quote)
    line = np.searchsorted(ends, quotes)
    rank = np.arange(len(quotes)) - np.searchsorted(quotes, starts)[line]
    before = data[np.maximum(quotes - 1, 0)]
    after = data[np.minimum(quotes + 1, len(data) - 1)]
    opens = (quotes == starts[line]) | (before == sep) | (before == quote)
    closes = (quotes + 1 >= stops[line]) | (after == sep) | (after == quote)
    misplaced = line[np.where(rank % 2 == 0, ~opens, ~closes)]
    odd = np.flatnonzero(np.bincount(line, minlength=len(starts)) % 2)
    return np.union1d(misplaced, odd)


def line_faults(  # noqa: PLR0913 - the text and how to read it
    data: bytes,
    begin: int = 0,
    end: int | None = None,
    *,
    sep: int = ord(","),
    quote: int = ord('"'),
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each line of ``data[begin:end]`` (whole lines; the last may lack its line break) as its
    start, the end of its text (before ``\\r\\n``), both relative to ``begin``, and its fault:
    0 if pandas reads it as one row, else 1 + the fault's index in ``LINE_FAULTS`` (the first
    that applies). One vectorised pass finds the line breaks; quotes and carriage returns are
    looked at only where the text holds any."""
    end = len(data) if end is None else end
    array = np.frombuffer(data, np.uint8, count=end - begin, offset=begin)
    ends = np.flatnonzero(array == _NL)
    if len(array) and array[-1] != _NL:
        ends = np.append(ends, len(array))
    starts = np.zeros(len(ends), np.int64)
    starts[1:] = ends[:-1] + 1
    has_cr = data.find(b"\r", begin, end) >= 0
    stops = ends - ((ends > starts) & (array[np.maximum(ends - 1, 0)] == _CR)) if has_cr else ends
    length = stops - starts
    found: dict[str, np.ndarray] = {}  # each fault's lines, as positions
    if len(length) and length.max() > max_line_bytes:
        found[LINE_TOO_LONG] = np.flatnonzero(length > max_line_bytes)
    blank = _blank_lines(array, starts, length, sep)
    if blank.any():
        found[BLANK_LINE] = np.flatnonzero(blank)
    if has_cr:
        found[STRAY_LINE_BREAK] = _lines_with_stray_cr(array, ends)
    if data.find(bytes([quote]), begin, end) >= 0:
        found[UNBALANCED_QUOTE] = _lines_with_bad_quotes(array, starts, stops, ends, sep, quote)
    fault = np.zeros(len(ends), np.int8)
    for reason in reversed(LINE_FAULTS):  # the first that applies wins
        if reason in found:
            fault[found[reason]] = LINE_FAULTS.index(reason) + 1
    return starts, stops, fault


class AuditedLines(io.RawIOBase):
    """A CSV file's bytes without the lines pandas could not read as one row each (those are
    recorded as it goes: line number, fault, text; the header is line 1). Read block by block:
    memory stays bounded whatever the file's size or its longest line; a block without a
    faulty line is handed on without a copy."""

    def __init__(  # noqa: PLR0913, PLR0917 - the file and how to read it
        self, name: str, source: BinaryIO, sep: int, quote: int, max_line_bytes: int, encoding: str
    ) -> None:
        super().__init__()
        self._name, self._source, self._sep, self._quote = name, source, sep, quote
        self._max, self._encoding = max_line_bytes, encoding
        self.lines = 0  # whole lines read, the header included
        self.fault_lines: list[int] = []
        self.fault_reasons: list[str] = []
        self.fault_texts: list[str] = []
        self._carry = b""  # the start of a line the next block ends
        self._skipping = False  # inside a line already recorded as too long
        self._ready: deque[memoryview] = deque()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes of the lines kept (one copy, where a buffered reader makes two);
        all of them without a size."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_BLOCK_BYTES), b""))
        while not self._ready:
            if self._done:
                return b""
            self._next_block()
        chunk = self._ready[0]
        if size < len(chunk):
            self._ready[0] = chunk[size:]
            return chunk[:size].tobytes()
        self._ready.popleft()
        return chunk.tobytes()

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _next_block(self) -> None:
        """Read the next block: its whole lines pandas can read join ``_ready``."""
        block = self._source.read(_BLOCK_BYTES)
        self._done = not block
        begin = 0
        if not self.lines and not self._carry and block.startswith(_UTF8_BOM):
            self._ready.append(memoryview(_UTF8_BOM))  # pandas drops it; the header follows
            begin = len(_UTF8_BOM)
        if self._skipping:
            cut = block.find(b"\n")
            if cut < 0 and not self._done:
                return
            self._skipping, self.lines = False, self.lines + 1
            begin = cut + 1 if cut >= 0 else len(block)
        first_end = block.find(b"\n", begin) + 1
        if self._done or not first_end:  # no line ends in this block
            self._carry += block[begin:]
            if self._done:
                self._keep(self._carry, 0, len(self._carry))
                self._carry = b""
        else:  # the carried line, completed; then the block's own whole lines
            last_end = block.rfind(b"\n") + 1
            head = self._carry + block[begin:first_end]
            self._keep(head, 0, len(head))
            self._keep(block, first_end, last_end)
            self._carry = block[last_end:]
        if len(self._carry) > self._max + 1:  # + 1: a '\r' before its line break
            self._record(self.lines + 1, LINE_TOO_LONG, self._carry)
            self._carry, self._skipping = b"", True

    def _keep(self, data: bytes, begin: int, end: int) -> None:
        """Queue the lines of ``data[begin:end]`` pandas can read; record the others."""
        if begin >= end:
            return
        starts, stops, fault = line_faults(
            data, begin, end, sep=self._sep, quote=self._quote, max_line_bytes=self._max
        )
        first = self.lines + 1
        self.lines += len(starts)
        view = memoryview(data)[begin:end]
        if not fault.any():
            self._ready.append(view)
            return
        for index in np.flatnonzero(fault).tolist():
            start = begin + int(starts[index])
            text = data[start : min(begin + int(stops[index]), start + LINE_TEXT_BYTES)]
            self._record(first + index, LINE_FAULTS[fault[index] - 1], text)
        sizes = np.diff(np.append(starts, end - begin))
        kept = np.frombuffer(view, np.uint8)[np.repeat(fault == 0, sizes)]
        if len(kept):  # an empty chunk would read as the end of the file
            self._ready.append(memoryview(kept.tobytes()))

    def _record(self, line: int, reason: str, text: bytes) -> None:
        if line == 1:
            raise DatasetError(
                f"{self._name} line 1, the header, is not readable ({reason}): expected the"
                f" column names on one line of at most {self._max} bytes, quotes balanced."
            )
        self.fault_lines.append(line)
        self.fault_reasons.append(reason)
        self.fault_texts.append(text[:LINE_TEXT_BYTES].decode(self._encoding, errors="replace"))

    def original_line(self, line: int) -> int:
        """The file's line number of the ``line``-th line pandas was given."""
        for fault in self.fault_lines:
            if fault > line:
                break
            line += 1
        return line

    def with_fault_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (the rows pandas read) with a row per faulty line in its place: every value
        null, ``LINE_FAULT`` and ``LINE_TEXT`` set. One row per data line, in file order."""
        rows = max(self.lines - 1, 0)
        if len(frame) != rows - len(self.fault_lines):
            raise DatasetError(
                f"{self._name}: pandas read {len(frame)} rows from"
                f" {rows - len(self.fault_lines)} lines that should each have been one row."
            )
        if not self.fault_lines:
            return frame
        at = np.asarray(self.fault_lines) - 2
        read = np.ones(rows, dtype=bool)
        read[at] = False
        # Nullable integers and booleans hold the nulls exactly (float64 would round ids > 2**53).
        exact = {"i": "Int64", "u": "UInt64", "b": "boolean"}
        frame = frame.astype(
            {
                col: exact[kind]
                for col, kind in frame.dtypes.map(lambda t: t.kind).items()
                if kind in exact
            }
        )
        frame.index = np.flatnonzero(read)
        frame = frame.reindex(pd.RangeIndex(rows))
        for column, values in ((LINE_FAULT, self.fault_reasons), (LINE_TEXT, self.fault_texts)):
            column_values = np.full(rows, None, dtype=object)
            column_values[at] = values
            frame[column] = column_values
        return frame


def audit_settings(load_args: dict[str, Any], path: str) -> tuple[int, int, str | None, str] | None:
    """(separator, quote, compression, encoding) when every data line is one row for pandas
    with these ``load_args`` (of a CSV at ``path``), else None (the file is then read
    unaudited)."""
    args = load_args
    if any(args.get(name, values[0]) not in values for name, values in _ONE_ROW_PER_LINE.items()):
        return None
    sep = _byte(args.get("sep", args.get("delimiter", ",")))
    quote = _byte(args.get("quotechar", '"'))
    encoding = args.get("encoding") or "utf-8"
    compression = args.get("compression", "infer")
    if not isinstance(compression, str | None):
        return None
    codec = infer_compression(path, compression)
    if (
        sep is None
        or quote is None
        or sep in (_NL, _CR, quote)
        or not _ascii_compatible(encoding)
        or codec not in (None, *_STREAM_CODECS)
    ):
        return None
    return sep, quote, codec, encoding
