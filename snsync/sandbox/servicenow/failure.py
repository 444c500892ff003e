"""Error answers in ServiceNow's shapes."""

from __future__ import annotations

from collections.abc import Mapping

from snsync.sandbox.server import Response

MAINTENANCE_PAGE = (
    "<html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable</h1>"
    "<p>This instance is temporarily unavailable while it is being upgraded or maintained. "
    "Please try again later.</p></body></html>"
)
NOT_FOUND_PAGE = "<html><head><title>Not Found</title></head><body>Not Found</body></html>"


class Failure(Exception):
    """An error answer in ServiceNow's shape, raised from anywhere below `handle`."""

    def __init__(
        self,
        status: int,
        message: str,
        detail: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}
        return Response(self.status, body, dict(self.headers))


def rate_limited(retry_after: int, reset: int, limit: int | None) -> Failure:
    headers = {"Retry-After": str(retry_after), "X-RateLimit-Reset": str(reset)}
    if limit is not None:
        headers["X-RateLimit-Limit"] = str(limit)
    rule = f"{limit} requests per hour" if limit is not None else "the rate limit"
    detail = f"Exceeded {rule}; retry after {retry_after} seconds"
    return Failure(429, "Rate limit exceeded", detail, headers)
