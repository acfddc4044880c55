"""Timestamps parsed with Spark's own functions, in the source's time zone, to UTC instants.

The session's time zone is UTC (``session.REQUIRED_SETTINGS``). Naive local times are read as
wall-clock times of ``source_timezone``; a local time that occurs twice (DST ends) or never
(DST starts) is flagged, not guessed, as pandas' ``tz_localize(ambiguous="NaT",
nonexistent="NaT")`` does. Text with an offset or ``Z`` is taken at its offset. All in column
expressions: no Python per row.
"""

from __future__ import annotations

import re

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

#: A time of day followed by a zone designator: the text says its own offset.
_HAS_ZONE = r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s?(Z|[+-]\d{2}(:?\d{2})?)$"
#: strftime codes -> Java DateTimeFormatter letters (what `timestamp_format` may use).
_STRFTIME_TO_JAVA = {
    "%Y": "yyyy",
    "%m": "MM",
    "%d": "dd",
    "%H": "HH",
    "%I": "hh",
    "%M": "mm",
    "%S": "ss",
    "%f": "SSSSSS",
    "%p": "a",
    "%y": "yy",
    "%b": "MMM",
    "%B": "MMMM",
    "%j": "DDD",
    "%z": "XX",
    "%%": "%",
}
_DAY_MICROS = 86_400_000_000


def java_pattern(timestamp_format: str) -> str:
    """A strftime pattern (``data_processing.timestamp_format``) as a Spark datetime pattern."""
    out, pos = [], 0
    for match in re.finditer(r"%.", timestamp_format):
        literal = timestamp_format[pos : match.start()]
        if literal:
            out.append(
                "'" + literal.replace("'", "''") + "'"
                if re.search(r"[A-Za-z]", literal)
                else literal
            )
        code = match.group()
        if code not in _STRFTIME_TO_JAVA:
            raise ValueError(
                f"timestamp_format {timestamp_format!r}: {code} has no Spark equivalent here; "
                f"supported: {sorted(_STRFTIME_TO_JAVA)}."
            )
        out.append(_STRFTIME_TO_JAVA[code])
        pos = match.end()
    out.append(timestamp_format[pos:])
    return "".join(out)


def localize(wall: Column, timezone: str) -> tuple[Column, Column]:
    """UTC instants of wall-clock times of ``timezone`` (given as UTC-labelled timestamps), and
    a flag where the wall time is ambiguous or does not exist (the instant is then null).

    The zone's offset a day before and a day after each time gives the two candidate instants;
    a candidate is valid if it shows that wall time in the zone. One valid: that instant. Both,
    with different offsets: ambiguous. Neither: skipped by a DST jump.
    """
    micros = F.unix_micros(wall)

    def offset(at_micros: Column) -> Column:
        at = F.timestamp_micros(at_micros)
        return F.unix_micros(F.from_utc_timestamp(at, timezone)) - at_micros

    before, after = offset(micros - _DAY_MICROS), offset(micros + _DAY_MICROS)
    first, second = micros - before, micros - after

    def shows_wall(candidate: Column) -> Column:
        return (
            F.unix_micros(F.from_utc_timestamp(F.timestamp_micros(candidate), timezone)) == micros
        )

    ok_first, ok_second = shows_wall(first), shows_wall(second)
    ambiguous = wall.isNotNull() & (
        (ok_first & ok_second & (before != after)) | (~ok_first & ~ok_second)
    )
    instant = (
        F.when(ambiguous, F.lit(None))
        .when(ok_first, F.timestamp_micros(first))
        .otherwise(F.timestamp_micros(second))
    )
    return instant.cast(T.TimestampType()), F.coalesce(ambiguous, F.lit(False))


def parse_utc(
    values: Column, data_type: T.DataType, timestamp_format: str, source_timezone: str
) -> tuple[Column, Column]:
    """(UTC instant or null, ambiguous-local-time flag) of a raw timestamp column.

    Text is parsed with ``try_cast`` (ISO 8601, any separator, optional fraction and offset)
    or ``try_to_timestamp`` with ``timestamp_format``; unparsable text gives null. Naive values
    (text without an offset, TIMESTAMP_NTZ) are localized in ``source_timezone``; instants
    (TIMESTAMP) are kept as they are.
    """
    if isinstance(data_type, T.TimestampType):
        return values, F.lit(False)
    if isinstance(data_type, T.TimestampNTZType):
        return localize(values.cast(T.TimestampType()), source_timezone)
    text = values.cast(T.StringType())
    if timestamp_format == "ISO8601":
        parsed = text.try_cast(T.TimestampType())
        aware = text.rlike(_HAS_ZONE)
    else:
        parsed = F.try_to_timestamp(text, F.lit(java_pattern(timestamp_format)))
        aware = F.lit("%z" in timestamp_format)
    local, ambiguous = localize(parsed, source_timezone)
    return (
        F.when(aware, parsed).otherwise(local),
        F.when(aware, F.lit(False)).otherwise(ambiguous),
    )
