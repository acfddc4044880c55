"""Credentials out of every URI the project logs, raises or writes.

A tracking URI such as ``https://alice:s3cret@mlflow.internal`` or a presigned URL's
``X-Amz-Signature=...`` is a secret. ``redact`` replaces the user-info part of every URI in a
text and the values of query parameters whose names suggest a secret, leaving the rest (scheme,
host, port, path) so the message still says which server or object it is about.
"""

from __future__ import annotations

import logging
import re

#: ``scheme://user[:password]@``: the user-info part of a URI (RFC 3986), in any text.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@?#'\"]+)@")
#: ``?token=...``, ``&X-Amz-Signature=...``, ``password=...``: values of secret-looking parameters.
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:[^=&\s#]*?)(?:token|secret|password|passwd|pwd|signature|credential"
    r"|access[_-]?key|api[_-]?key|sig)[^=&\s#]*=)(?P<value>[^&\s#'\"]+)",
    re.IGNORECASE,
)
MASK = "***"


def redact(text: object) -> str:
    """``text`` (any object, as ``str``) with the credentials of every URI in it masked."""
    result = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", str(text))
    return _SECRET_PARAM.sub(lambda m: f"{m['name']}{MASK}", result)


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
