"""Timestamps parsed with Spark's own functions, in the source's time zone, to UTC instants.

The session's time zone is UTC (``session.REQUIRED_SETTINGS``). Naive local times are read as
wall-clock times of ``source_timezone``; a local time that occurs twice (DST ends) or never
(DST starts) is flagged, not guessed, as pandas' ``tz_localize(ambiguous="NaT",
nonexistent="NaT")`` does. Text with an offset or ``Z`` is taken at its offset. All in column
expressions: no Python per row.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

#: A time of day followed by a zone designator: the text says its own offset.
_HAS_ZONE = r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s?(Z|[+-]\d{2}(:?\d{2})?)$"
#: Hours and minutes, no seconds, then a zone designator (groups: separator, HH:mm, zone).
_ZONE_AFTER_MINUTES = r"([T\s])(\d{1,2}:\d{2})(\s?(Z|[+-]\d{2}(:?\d{2})?))$"
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


def with_utc_timestamps(
    frame: DataFrame,
    columns: dict[str, tuple[str, str]],
    timestamp_format: str,
    source_timezone: str,
) -> DataFrame:
    """``frame`` with, for each raw timestamp column, its UTC instant (null where unparsable or
    ambiguous) and an ambiguous-local-time flag: ``columns`` maps each raw column to the names
    of those two new columns.

    Text is parsed with ``try_cast`` (ISO 8601: either separator, optional fraction and offset)
    or ``try_to_timestamp`` with ``timestamp_format``; unparsable text gives null. Naive values
    (text without an offset, TIMESTAMP_NTZ) are wall-clock times of ``source_timezone``;
    instants (TIMESTAMP) and text with an offset are kept as they are.

    A naive time's instant: the zone's offset a day before and a day after gives two candidate
    instants; a candidate is valid if it shows that wall time in the zone. One valid: that
    instant. Both, with different offsets: ambiguous (DST ends). Neither: the time never
    happened (DST starts). Each step is its own projection, referring to the previous one's
    columns by name, so no expression is copied into the next (plans stay small).
    """
    types = {field.name: field.dataType for field in frame.schema.fields}
    keep = list(frame.columns)
    steps: list[dict[str, Column]] = [{}, {}, {}, {}]
    finals: dict[str, Column] = {}
    for raw, (utc, ambiguous) in columns.items():
        wall, aware, micros = f"_wall_{raw}", f"_aware_{raw}", f"_wall_us_{raw}"
        before, after, ok_before, ok_after = (
            f"_{k}_{raw}" for k in ("before", "after", "ok1", "ok2")
        )
        data_type = types[raw]
        if isinstance(data_type, T.TimestampType):
            steps[0][wall], steps[0][aware] = F.col(raw), F.lit(True)
        elif isinstance(data_type, T.TimestampNTZType):
            steps[0][wall], steps[0][aware] = F.col(raw).cast(T.TimestampType()), F.lit(False)
        elif timestamp_format == "ISO8601":
            text = F.col(raw).cast(T.StringType())
            # The regexes only where the text's tail holds a zone sign (a cheap necessary
            # test: a naive "...10:00:00" has none), not on every value.
            tail = F.substring(text, -8, 8)
            signed = tail.contains("Z") | tail.contains("+") | tail.contains("-")
            # Spark's cast refuses a zone after minutes without seconds ("10:00+01:00", which
            # pandas reads): those get ":00" and a second try (coalesce stops at the first).
            with_seconds = F.regexp_replace(text, _ZONE_AFTER_MINUTES, "$1$2:00$3")
            steps[0][wall] = F.coalesce(
                text.try_cast(T.TimestampType()),
                F.when(signed, with_seconds.try_cast(T.TimestampType())),
            )
            steps[0][aware] = F.when(signed, text.rlike(_HAS_ZONE)).otherwise(F.lit(False))
        else:
            pattern = F.lit(java_pattern(timestamp_format))
            steps[0][wall] = F.try_to_timestamp(F.col(raw).cast(T.StringType()), pattern)
            steps[0][aware] = F.lit("%z" in timestamp_format)
        steps[1][micros] = F.unix_micros(F.col(wall))
        steps[2][before] = _offset(F.col(micros) - _DAY_MICROS, source_timezone)
        steps[2][after] = _offset(F.col(micros) + _DAY_MICROS, source_timezone)
        # The zone's offset is the same a day before and after (no DST change near): the
        # instant is wall - offset, valid by construction; only near a change are the
        # candidates checked (CASE WHEN evaluates its branches lazily: two zone look-ups per
        # value instead of four on every other day).
        steady = F.col(before) == F.col(after)
        steps[3][ok_before] = steady | _shows(
            F.col(micros) - F.col(before), F.col(micros), source_timezone
        )
        steps[3][ok_after] = ~steady & _shows(
            F.col(micros) - F.col(after), F.col(micros), source_timezone
        )
        is_ambiguous = (
            ~F.col(aware)
            & F.col(wall).isNotNull()
            & (
                (F.col(ok_before) & F.col(ok_after) & (F.col(before) != F.col(after)))
                | (~F.col(ok_before) & ~F.col(ok_after))
            )
        )
        finals[ambiguous] = F.coalesce(is_ambiguous, F.lit(False))
        finals[utc] = (
            F.when(F.col(aware), F.col(wall))
            .when(is_ambiguous, F.lit(None))
            .when(F.col(ok_before), F.timestamp_micros(F.col(micros) - F.col(before)))
            .otherwise(F.timestamp_micros(F.col(micros) - F.col(after)))
            .cast(T.TimestampType())
        )
    for step in steps:
        frame = frame.withColumns(step)
    return frame.select(*keep, *(value.alias(name) for name, value in finals.items()))


def _offset(at_micros: Column, timezone: str) -> Column:
    """The zone's UTC offset (micros) at an instant (micros)."""
    return F.unix_micros(F.from_utc_timestamp(F.timestamp_micros(at_micros), timezone)) - at_micros


def _shows(candidate_micros: Column, wall_micros: Column, timezone: str) -> Column:
    """Whether the instant shows the wall time in the zone."""
    shown = F.from_utc_timestamp(F.timestamp_micros(candidate_micros), timezone)
    return F.unix_micros(shown) == wall_micros
