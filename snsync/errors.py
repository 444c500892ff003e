"""The error vocabulary: every failure snsync reports is one of these, and each decides retry, skip
or stop, and the process exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, 'Exit codes')."""

    OK = 0
    OBJECT_FAILURES = 1
    CONFIG = 2
    CONNECTION = 3
    HELD = 4
    NOT_CARRIED = 5
    LOCKED = 75
    LOCAL_FILE = 73


class SnsyncError(Exception):
    """Base of every error snsync raises on purpose; its message is one line for an admin."""

    exit_code: ExitCode = ExitCode.CONNECTION


class ConfigError(SnsyncError):
    """The configuration file, a referenced secret, or a command-line argument is wrong."""

    exit_code = ExitCode.CONFIG


class FixtureError(ConfigError):
    """A sandbox fixture file is malformed."""


class WriteBlockedError(SnsyncError):
    """A write was attempted through a read-only client (plan, dry run): a bug, not user error."""


class LockedError(SnsyncError):
    """Another snsync run holds the state lock."""

    exit_code = ExitCode.LOCKED


class LocalFileError(SnsyncError):
    """A local file or folder snsync needs (state, log file, sandbox --dir) cannot be written."""

    exit_code = ExitCode.LOCAL_FILE


class ApiError(SnsyncError):
    """An HTTP call to Graph, the token service or ServiceNow failed."""

    retryable = False
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


class TransientError(ApiError):
    """Throttled, unavailable or the connection dropped: worth trying again later."""

    retryable = True
    reason_code = "Transient"


class NotFoundError(ApiError):
    """The object or endpoint does not exist (HTTP 404)."""

    reason_code = "NotFound"


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
