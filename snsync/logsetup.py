"""Logging for people and machines: short text on a terminal, timestamped text or JSON lines
elsewhere, an optional private log file, and every registered secret masked in all of them."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from io import TextIOWrapper
from pathlib import Path
from typing import Any, Literal, TextIO

from snsync.errors import ConfigError
from snsync.redact import RedactingFilter, redact

LOGGER = "snsync"
# The key of the `extra` mapping whose fields JSON lines carry: extra={"snsync": {"cycle": 42}}.
EXTRA_KEY = "snsync"

_CORE_FIELDS = frozenset({"time", "level", "logger", "message", "exception", "stack"})
_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)
# The handlers the last call installed, so that calling again replaces instead of duplicating.
_installed: list[logging.Handler] = []


def configure_logging(
    verbosity: int,
    quiet: bool,
    fmt: Literal["text", "json"] = "text",
    log_file: Path | None = None,
    *,
    stream: TextIO | None = None,
) -> None:
    """Send snsync's log to `stream` (stderr) and `log_file` at the level -v/-vv/-q ask for."""
    output = stream if stream is not None else sys.stderr
    handlers: list[logging.Handler] = [logging.StreamHandler(output)]
    handlers[0].setFormatter(_formatter(fmt, short=_is_terminal(output)))
    if log_file is not None:
        handlers.append(_file_handler(log_file))
        handlers[1].setFormatter(_formatter(fmt, short=False))
    for handler in handlers:
        handler.addFilter(RedactingFilter())
    _install(handlers)
    level = logging.ERROR if quiet else _LEVELS[min(max(verbosity, 0), len(_LEVELS) - 1)]
    logging.getLogger(LOGGER).setLevel(level)
    # Libraries (urllib3, msal) stay at WARNING: their debug output is noise and may hold tokens.
    logging.getLogger().setLevel(logging.ERROR if quiet else logging.WARNING)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message`; off a terminal, led by a UTC timestamp and followed by extras."""

    def __init__(self, short: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.short = short

    def format(self, record: logging.LogRecord) -> str:
        """The record as one (redacted) line, plus any traceback."""
        text = super().format(record)
        if not self.short:
            extras = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
            text = f"{_iso_time(record.created)} {text}" + (f" [{extras}]" if extras else "")
        return redact(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's snsync extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line with every string field redacted."""
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in _extra_fields(record).items():
            entry[f"{EXTRA_KEY}_{key}" if key in _CORE_FIELDS else key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=lambda v: redact(str(v)))


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """Appends to a file created readable by its owner only, reopened after logrotate moves it."""

    def _open(self) -> TextIOWrapper:
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(descriptor, "a", encoding=self.encoding or "utf-8", errors=self.errors)


def _formatter(fmt: Literal["text", "json"], short: bool) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter(short=short)


def _file_handler(path: Path) -> logging.Handler:
    target = path.expanduser()
    try:
        return PrivateFileHandler(target, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"--log-file: cannot open '{target}': {reason}") from None


def _install(handlers: list[logging.Handler]) -> None:
    """On the root logger, so that library warnings are formatted and redacted the same way."""
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed[:] = handlers
    for handler in handlers:
        root.addHandler(handler)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    extra = getattr(record, EXTRA_KEY, None)
    if not isinstance(extra, Mapping):
        return {}
    return {str(key): _clean(value) for key, value in extra.items()}


def _clean(value: Any) -> Any:
    """`value` made JSON-ready with every string in it redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return redact(str(value))


def _iso_time(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
