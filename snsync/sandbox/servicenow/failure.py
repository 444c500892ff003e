"""Error answers in ServiceNow's shapes."""

from __future__ import annotations

from collections.abc import Mapping

from snsync.sandbox.options import DEFAULT_URL_LIMIT, URL_LIMIT_RANGE
from snsync.sandbox.server import Request, Response

__all__ = ["DEFAULT_URL_LIMIT", "HEADER_TOO_LARGE_PAGE", "URL_LIMIT_RANGE", "Failure"]

# The request line and headers an instance's web tier (Tomcat) takes: 8 KB is Tomcat's default
# maxHttpHeaderSize, the smallest instances run with (up to about 23 KB is seen); past it the
# answer is Tomcat's HTML "Request header is too large" page (KB0826932).
HEADER_TOO_LARGE_PAGE = (
    '<!doctype html><html lang="en"><head><title>HTTP Status 400 \u2013 Bad Request</title>'
    '</head><body><h1>HTTP Status 400 \u2013 Bad Request</h1><hr class="line" />'
    "<p><b>Type</b> Exception Report</p><p><b>Message</b> Request header is too large</p>"
    "<p><b>Description</b> The server cannot or will not process the request due to something "
    "that is perceived to be a client error (e.g., malformed request syntax, invalid request "
    'message framing, or deceptive request routing).</p><hr class="line" /></body></html>'
)


def header_bytes(request: Request) -> int:
    """The size of the request line and headers as sent."""
    line = len(request.method) + len(request.raw_path) + len(" HTTP/1.1\r\n") + 1
    return line + sum(len(k) + len(v) + 4 for k, v in request.headers.items())


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
