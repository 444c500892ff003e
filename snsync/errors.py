"""The error vocabulary: every failure snsync reports is one of these classes, and one table
(`MEANINGS`) decides for each what it means: whether the HTTP layer retries it now, what it does
to a read (mark it incomplete, read fully instead, stop the cycle) and to a write (fail this
object, count as an authentication failure, stop the cycle), and the exit code it ends with.

Exceptions from outside (requests, ssl, socket, OSError, sqlite3) are turned into these at the
boundary where they arise, by the `from_*` helpers at the bottom of this module."""

from __future__ import annotations

import errno
import sqlite3
import ssl
from dataclasses import dataclass
from enum import Enum, IntEnum
from pathlib import Path

import requests


class ExitCode(IntEnum):
    """Documented process exit codes (README, 'Exit codes')."""

    OK = 0
    OBJECT_FAILURES = 1
    CONFIG = 2
    CONNECTION = 3
    HELD = 4
    NOT_CARRIED = 5
    DEADLINE = 6
    QUOTA = 7
    INTERNAL = 70
    LOCAL_FILE = 73
    LOCKED = 75
    INTERRUPTED = 130


class Outcome(Enum):
    """What an error that reached the engine means for the work it interrupted."""

    FAIL_OBJECT = "fail this object (retried next cycle, with back-off)"
    INCOMPLETE_READ = "mark the read incomplete (the cycle disables nothing)"
    READ_FULLY = "start a full read instead"
    AUTH_FAILURE = "count as an authentication failure (quarantine after several)"
    STOP_CYCLE = "stop the cycle"


class SnsyncError(Exception):
    """Base of every error snsync raises on purpose; its message is one line for an admin."""

    @property
    def exit_code(self) -> ExitCode:
        return meaning(self).exit_code


class ConfigError(SnsyncError):
    """The configuration file, a referenced secret, or a command-line argument is wrong."""


class FixtureError(ConfigError):
    """A sandbox fixture file is malformed."""


class WriteBlockedError(SnsyncError):
    """A write was attempted through a read-only client (plan, dry run): a bug, not user error."""


class LockedError(SnsyncError):
    """Another snsync run holds the state lock."""


class LocalFileError(SnsyncError):
    """A local file or folder snsync needs (state database, lock, metrics, log file, sandbox
    --dir) cannot be created, read or written."""


class QuarantinedError(SnsyncError):
    """The job is quarantined: cycles wait, or it has stopped until an admin clears it."""


class NotificationError(SnsyncError):
    """A notification mail could not be handed to the SMTP server."""


class CycleStopped(SnsyncError):
    """The cycle was stopped before it finished: a signal, `schedule.max_cycle_time`, or a spent
    request quota. What finished is recorded; the rest is done by a later cycle."""

    def __init__(self, message: str, *, code: ExitCode = ExitCode.INTERRUPTED) -> None:
        super().__init__(message)
        self.code = code

    @property
    def exit_code(self) -> ExitCode:
        return self.code


class ApiError(SnsyncError):
    """An HTTP call to Graph, the token service or ServiceNow failed."""

    reason_code = "ApiError"

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.code = code
        self.method = method
        self.url = url

    @property
    def retryable(self) -> bool:
        return meaning(self).retry


class TransientError(ApiError):
    """Throttled, unavailable or the connection dropped: worth trying again later."""

    reason_code = "Transient"


class UnreadableAnswerError(TransientError):
    """An answer that cannot be read: truncated or invalid JSON, an HTML page with status 200,
    a body cut off. Retried like a 503 where repeating the request is safe."""

    reason_code = "UnreadableAnswer"


class RequestDeadlineError(TransientError):
    """One request took longer than its total deadline (connect plus the whole body)."""

    reason_code = "Deadline"


class TlsError(ApiError):
    """TLS to a service failed (unknown CA, wrong host name, TLS-inspecting proxy): asking again
    does not help; the fix is the CA file or the URL."""

    reason_code = "TlsError"


class NotFoundError(ApiError):
    """The object or endpoint does not exist (HTTP 404)."""

    reason_code = "NotFound"


class DeltaExpired(ApiError):
    """A stored Graph delta link is no longer valid (400 syncStateNotFound, or 410): read fully."""

    reason_code = "DeltaExpired"


class ConflictError(ApiError):
    """The write conflicts with existing data (HTTP 409, or a uniqueness rule)."""

    reason_code = "Conflict"


class ForbiddenError(ApiError):
    """Authenticated, but the account or app lacks a role or permission (HTTP 403)."""

    reason_code = "Forbidden"


class UnauthorizedError(ApiError):
    """The credentials were refused (HTTP 401, or a token-service error)."""

    reason_code = "Unauthorized"


class BadRequestError(ApiError):
    """The service rejected the request as malformed (HTTP 400) or answered something unusable."""

    reason_code = "BadRequest"


class UnsafeAnswerError(BadRequestError):
    """An answer snsync refuses to follow or keep: a link to another origin, a page loop, too
    many pages, a body or JSON nesting over the limits. The read ends; the cycle disables
    nothing."""

    reason_code = "UnsafeAnswer"


@dataclass(frozen=True)
class Meaning:
    """What one error class means (a row of `MEANINGS`)."""

    retry: bool  # the HTTP layer repeats the request now (with back-off), where that is safe
    read: Outcome  # when it ends a read, after any retries
    write: Outcome  # when it ends a write, after any retries
    exit_code: ExitCode  # when it ends the command


_STOP = Outcome.STOP_CYCLE
_FAIL = Outcome.FAIL_OBJECT
_INCOMPLETE = Outcome.INCOMPLETE_READ
_AUTH = Outcome.AUTH_FAILURE

# The one table. A class not listed takes its nearest listed base class's row.
MEANINGS: dict[type[SnsyncError], Meaning] = {
    SnsyncError: Meaning(False, _STOP, _STOP, ExitCode.INTERNAL),
    ConfigError: Meaning(False, _STOP, _STOP, ExitCode.CONFIG),
    WriteBlockedError: Meaning(False, _STOP, _STOP, ExitCode.INTERNAL),
    LockedError: Meaning(False, _STOP, _STOP, ExitCode.LOCKED),
    LocalFileError: Meaning(False, _STOP, _STOP, ExitCode.LOCAL_FILE),
    QuarantinedError: Meaning(False, _STOP, _STOP, ExitCode.HELD),
    NotificationError: Meaning(False, _STOP, _STOP, ExitCode.CONNECTION),
    CycleStopped: Meaning(False, _STOP, _STOP, ExitCode.INTERRUPTED),
    ApiError: Meaning(False, _STOP, _FAIL, ExitCode.CONNECTION),
    TransientError: Meaning(True, _INCOMPLETE, _FAIL, ExitCode.CONNECTION),
    UnreadableAnswerError: Meaning(True, _INCOMPLETE, _FAIL, ExitCode.CONNECTION),
    RequestDeadlineError: Meaning(True, _INCOMPLETE, _FAIL, ExitCode.CONNECTION),
    TlsError: Meaning(False, _STOP, _STOP, ExitCode.CONNECTION),
    NotFoundError: Meaning(False, _STOP, _FAIL, ExitCode.CONNECTION),
    DeltaExpired: Meaning(False, Outcome.READ_FULLY, _FAIL, ExitCode.CONNECTION),
    ConflictError: Meaning(False, _STOP, _FAIL, ExitCode.CONNECTION),
    ForbiddenError: Meaning(False, _STOP, _FAIL, ExitCode.CONNECTION),
    UnauthorizedError: Meaning(False, _AUTH, _AUTH, ExitCode.CONNECTION),
    BadRequestError: Meaning(False, _INCOMPLETE, _FAIL, ExitCode.CONNECTION),
    UnsafeAnswerError: Meaning(False, _INCOMPLETE, _FAIL, ExitCode.CONNECTION),
}


def meaning(error: BaseException | type[BaseException]) -> Meaning:
    """The row of `MEANINGS` for an error (or error class); anything outside the vocabulary is
    an internal error that stops the cycle."""
    kind = error if isinstance(error, type) else type(error)
    for cls in kind.__mro__:
        row = MEANINGS.get(cls)
        if row is not None:
            return row
    return MEANINGS[SnsyncError]


def read_outcome(error: BaseException) -> Outcome:
    """What `error` means for a read it ended."""
    return meaning(error).read


def write_outcome(error: BaseException) -> Outcome:
    """What `error` means for a write it ended."""
    return meaning(error).write


def error_for_status(status: int) -> type[ApiError]:
    """The error class for an HTTP status code."""
    if status in (429, 500, 502, 503, 504):
        return TransientError
    return {
        400: BadRequestError,
        401: UnauthorizedError,
        403: ForbiddenError,
        404: NotFoundError,
        409: ConflictError,
        410: NotFoundError,
    }.get(status, ApiError)


# Helpers that map exceptions from outside the vocabulary, at the boundary where they arise.


def from_requests_error(
    exc: BaseException, *, service: str, method: str, url: str, ca_key: str | None = None
) -> ApiError:
    """A requests / urllib3 / ssl / socket exception of one request as a vocabulary error.
    `url` must already be redacted; `ca_key` names the config key of the CA file (TLS advice)."""
    where = f"{service}: {method} {url}"
    if _is_tls(exc):
        advice = (
            f"; if the service uses a private or inspecting CA, set {ca_key} to its PEM file"
            if ca_key
            else ""
        )
        return TlsError(
            f"{where}: TLS failed ({tls_reason(exc)}){advice}",
            service=service,
            method=method,
            url=url,
        )
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return BadRequestError(f"{where}: invalid URL", service=service, method=method, url=url)
    if isinstance(
        exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        return UnreadableAnswerError(
            f"{where}: the answer was cut off", service=service, method=method, url=url
        )
    return TransientError(
        f"{where}: {describe_connection_failure(exc)}", service=service, method=method, url=url
    )


def from_os_error(exc: OSError, *, what: str, path: Path | str) -> LocalFileError:
    """An OSError on a local file as one line naming the file and the cause."""
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or type(exc).__name__
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        hint = "; check the owner and mode of the file and its folder"
    elif exc.errno == errno.ENOSPC:
        hint = "; the disk is full"
    return LocalFileError(f"{what} '{path}': {reason}{hint}")


def from_sqlite_error(exc: sqlite3.Error, *, path: Path | str) -> SnsyncError:
    """A sqlite3 error on the state database as one line; a locked or busy database is the
    LockedError exit code, a file that is not a database a ConfigError (state.path)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text.lower():
        return LockedError(f"state file '{path}' is busy: {text}; another snsync may be running")
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text.lower():
        return ConfigError(f"state.path: '{path}' is not a usable snsync state file: {text}")
    return LocalFileError(f"state file '{path}': {text}")


def describe_connection_failure(exc: BaseException | None) -> str:
    """A short phrase for a failed request: DNS, refused, dropped, timed out."""
    if exc is None:
        return "no answer"
    if isinstance(exc, requests.Timeout | TimeoutError):
        return "timed out"
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name not found (DNS)"
    if "Connection refused" in text or isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if (
        "RemoteDisconnected" in text
        or "Connection aborted" in text
        or "Connection reset" in text
        or isinstance(exc, ConnectionResetError)
    ):
        return "connection dropped by the server"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:200]


def tls_reason(exc: BaseException) -> str:
    """The useful part of a TLS failure, e.g. 'certificate verify failed: unable to get local
    issuer certificate'."""
    text = str(exc)
    for marker in ("certificate verify failed", "hostname mismatch", "wrong version number"):
        at = text.find(marker)
        if at >= 0:
            end = text.find(")", at)
            return text[at : end if end > at else at + 120].rstrip(" (')\"")
    return "handshake failed"


def _is_tls(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.SSLError | ssl.SSLError):
            return True
        current = current.__cause__ or current.__context__ or _first_arg_error(current)
    return False


def _first_arg_error(exc: BaseException) -> BaseException | None:
    for arg in exc.args:
        if isinstance(arg, BaseException):
            return arg
        reason = getattr(arg, "reason", None)
        if isinstance(reason, BaseException):
            return reason
    return None
