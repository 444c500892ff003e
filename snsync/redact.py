"""Keep secrets out of every message: registered secret values are masked wherever text is shown,
and a logging filter applies the same to every log record."""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_QUERY_SECRET = re.compile(r"(?i)((?:client_secret|password|access_token|refresh_token)=)[^&\s]+")


def register(*values: str | None) -> None:
    """Remember secret values so that `redact` masks them from now on."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    """`text` with every registered secret, bearer token and secret query parameter masked."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _BEARER.sub(rf"\1{MASK}", text)
    return _QUERY_SECRET.sub(rf"\1{MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the rendered message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
