"""Logging for people and machines: short text on a terminal, timestamped text or JSON lines
elsewhere, an optional private log file, and every registered secret masked in all of them."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from io import TextIOWrapper
from pathlib import Path
from typing import Any, Literal, TextIO

import click

from snsync.errors import LocalFileError
from snsync.printable import printable
from snsync.redact import RedactingFilter, redact

LOGGER = "snsync"
# The key of the `extra` mapping whose fields JSON lines carry: extra={"snsync": {"cycle": 42}}.
EXTRA_KEY = "snsync"
# A record attribute: true for records the console already showed as plain text (log file only).
FILE_ONLY = "snsync_file_only"

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
    handlers[0].addFilter(_not_file_only)
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
        """The record as one (redacted) line with control characters escaped, plus any
        traceback."""
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if not self.short:
            extras = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
            text = f"{_iso_time(record.created)} {text}" + (f" [{extras}]" if extras else "")
        lines = [text]
        if record.exc_info:
            lines += self.formatException(record.exc_info).splitlines()
        if record.stack_info:
            lines += self.formatStack(record.stack_info).splitlines()
        return "\n".join(printable(redact(line)) for line in lines)


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
        text = json.dumps(entry, ensure_ascii=False, default=lambda v: redact(str(v)))
        # json escapes C0 controls itself; C1 controls and line separators are escaped here.
        return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """Appends to a regular file readable by its owner only (mode 600, never through a symlink),
    reopened after logrotate moves it."""

    def _open(self) -> TextIOWrapper:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
        descriptor = os.open(self.baseFilename, flags, 0o600)
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise IsADirectoryError(0, "not a regular file")
            if info.st_mode & 0o077:
                os.fchmod(descriptor, 0o600)
            os.set_blocking(descriptor, True)
        except OSError:
            os.close(descriptor)
            raise
        return open(descriptor, "a", encoding=self.encoding or "utf-8", errors=self.errors)


def _formatter(fmt: Literal["text", "json"], short: bool) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter(short=short)


def _file_handler(path: Path) -> logging.Handler:
    target = path.expanduser()
    if target.is_symlink():
        raise LocalFileError(
            f"--log-file: '{target}' is a symbolic link; snsync does not follow links for its "
            "log: give the real path"
        )
    try:
        return PrivateFileHandler(target, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        advice = _file_advice(target, exc)
        raise LocalFileError(f"--log-file: cannot open '{target}': {reason}{advice}") from None


def _file_advice(target: Path, exc: OSError) -> str:
    if not target.parent.is_dir():
        return f"; create the folder '{target.parent}' first"
    if isinstance(exc, PermissionError):
        return "; give the account that runs snsync write access to it, or log elsewhere"
    return ""


def _install(handlers: list[logging.Handler]) -> None:
    """On the root logger, so that library warnings are formatted and redacted the same way."""
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed[:] = handlers
    for handler in handlers:
        root.addHandler(handler)


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, FILE_ONLY, False)


@dataclass(frozen=True)
class Console:
    """A command's own messages (errors, warnings, notes, the cycle summary). Text logs: plain
    lines (`error: ...`) on stderr, the summary on stdout, and the same as records in the log
    file. JSON logs: each a JSON record on stderr and in the file. -q: errors only (and the
    summary of a cycle that did not succeed)."""

    quiet: bool = False
    json: bool = False

    def error(self, message: str) -> None:
        self._say(logging.ERROR, "error: ", message)

    def warning(self, message: str) -> None:
        if not self.quiet:
            self._say(logging.WARNING, "warning: ", message)

    def note(self, message: str) -> None:
        if not self.quiet:
            self._say(logging.INFO, "", message)

    def summary(self, text: str, *, ok: bool, fields: Mapping[str, Any]) -> None:
        """A cycle's summary: text on stdout, or one JSON record on stderr with `fields`."""
        if self.quiet and ok:
            return
        level = logging.INFO if ok else logging.ERROR
        lines = text.splitlines()
        if self.json:
            _emit(level, lines[0] if lines else "", fields)
            return
        click.echo(text)
        for line in lines:
            _emit(level, line, file_only=True)

    def _say(self, level: int, prefix: str, message: str) -> None:
        if self.json:
            _emit(level, message)
            return
        click.echo(prefix + printable(redact(message)), err=True)
        _emit(level, message, file_only=True)


def _emit(
    level: int, message: str, fields: Mapping[str, Any] | None = None, *, file_only: bool = False
) -> None:
    """Hand a record straight to snsync's handlers, whatever the logger's level: the console
    decided already that it is shown."""
    logger = logging.getLogger(LOGGER)
    extra = {EXTRA_KEY: dict(fields or {}), FILE_ONLY: file_only}
    record = logger.makeRecord(LOGGER, level, "(console)", 0, message, (), None, extra=extra)
    if not _installed:  # logging not set up yet (its own options were wrong): stderr directly
        if not file_only:
            sys.stderr.write(JsonFormatter().format(record) + "\n")
        return
    for handler in _installed:
        handler.handle(record)


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
