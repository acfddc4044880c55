"""Credentials out of every URI the project logs, raises or writes.

A tracking URI such as ``https://alice:s3cret@mlflow.internal`` or a presigned URL's
``X-Amz-Signature=...`` is a secret. ``redact`` replaces the user-info part of every URI in a
text and the values of query parameters whose names suggest a secret, leaving the rest (scheme,
host, port, path) so the message still says which server or object it is about.

People do not percent-encode their passwords: ``http://alice:Sec@ret/PW #1@host`` is what gets
configured and quoted back in errors. A URI parser (``urllib``) splits that at the first ``/``
or ``#`` and fails on the "port"; here a ``user:`` right after ``scheme://`` starts a password
that runs to the last ``@`` on the line, whatever it holds. When in doubt more is masked: a
URI without credentials followed on the same line by ``user:...@`` text loses its host in the
message, never a password.
"""

from __future__ import annotations

import bisect
import logging
import re

#: Where a URI's authority starts: right after ``scheme://``.
_SCHEME = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://")
#: A user name (or a token alone) after ``scheme://``: up to a ``:``, the path, query or
#: fragment, a space or a quote (an ``@`` inside, ``bob@corp.com``, belongs to it).
_USER = re.compile(r"[^\s:/?#'\"]*")
_LINE_BREAK = re.compile(r"[\r\n]")
#: A query parameter's name (``?name=``, ``&name=``, ``;name=``); its value runs to the next
#: ``&``, ``;``, space, ``#`` or quote.
_PARAM = re.compile(r"[?&;](?P<name>[^=&;?\s#]*)=")
_VALUE_END = re.compile(r"[&;\s#'\"]")
#: Names containing one of these words (``access_token``, ``X-Amz-Signature``, ``api-key``,
#: ``session_id``...) hold a secret.
_SECRET_NAME = re.compile(
    r"token|secret|password|passwd|pwd|signature|credential|key|sig|auth|jwt|session",
    re.IGNORECASE,
)
MASK = "***"


def userinfo_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the user-info of every URI in ``text``, ``text[end]`` being its ``@``.

    ``user:password`` (a ``:`` after the user name) runs to the last ``@`` on its line, the
    password holding anything but a line break; a user or token alone runs to the last ``@``
    of the name. Linear in the text (``@`` and line breaks are looked up, never rescanned).
    """
    ats = [found.start() for found in re.finditer("@", text)]
    if not ats:
        return []
    breaks = [found.start() for found in _LINE_BREAK.finditer(text)]
    spans: list[tuple[int, int]] = []
    for scheme in _SCHEME.finditer(text):
        start = scheme.end()
        if spans and scheme.start() <= spans[-1][1]:
            continue  # inside the user-info just found
        name_end = _USER.match(text, start).end()  # type: ignore[union-attr] - always matches
        end = -1
        if text.startswith(":", name_end):
            line = bisect.bisect_left(breaks, name_end)
            line_end = breaks[line] if line < len(breaks) else len(text)
            last = bisect.bisect_left(ats, line_end) - 1
            end = ats[last] if last >= 0 and ats[last] > name_end else -1
        if end < 0:  # no password: a user or token alone, if an '@' ends it
            last = bisect.bisect_left(ats, name_end) - 1
            end = ats[last] if last >= 0 and ats[last] > start else -1
        if end >= 0:
            spans.append((start, end))
    return spans


def redact(text: object) -> str:
    """``text`` (any object, as ``str``) with the credentials of every URI in it masked."""
    text = str(text)
    pieces, kept = [], 0
    for start, end in userinfo_spans(text):
        pieces += [text[kept:start], MASK]
        kept = end
    return _mask_secret_params("".join([*pieces, text[kept:]]))


def _mask_secret_params(text: str) -> str:
    """``text`` with the values of query parameters whose names suggest a secret masked
    (linear: each name is read once, each masked value once)."""
    pieces, kept = [], 0
    for param in _PARAM.finditer(text):
        if param.start() < kept or not _SECRET_NAME.search(param["name"]):
            continue
        value_end = _VALUE_END.search(text, param.end())
        end = value_end.start() if value_end else len(text)
        if end > param.end():
            pieces += [text[kept : param.end()], MASK]
            kept = end
    return "".join([*pieces, text[kept:]])


def without_userinfo(uri: str) -> str:
    """``uri`` with its user-info removed, whatever the password holds, so that ``urllib``
    can parse it and nothing secret goes on the wire: ``http://alice:Se/c#1@host:5000/api``
    -> ``http://host:5000/api``."""
    spans = userinfo_spans(uri)
    return uri if not spans else uri[: spans[0][0]] + uri[spans[0][1] + 1 :]


class RedactingFilter(logging.Filter):
    """A handler filter that masks credentials in a record's message and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(message)
        traceback = redact(record.exc_text) if record.exc_text else None
        if cleaned != message or traceback != record.exc_text:
            record.msg, record.args = cleaned, ()
            if traceback is not None:
                # The traceback's own frames may hold the secret too: keep only its text.
                record.msg = f"{cleaned}\n{traceback}"
                record.exc_info, record.exc_text = None, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
