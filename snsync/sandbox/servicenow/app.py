"""The sandbox ServiceNow instance as one `App`: routes a request to the token endpoint, the
Batch API or the Table/Stats API, inside the instance's concurrency and rate limits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

from snsync.sandbox.server import Request, Response
from snsync.sandbox.servicenow.auth import Logins
from snsync.sandbox.servicenow.batch import BatchApi
from snsync.sandbox.servicenow.failure import (
    MAINTENANCE_PAGE,
    NOT_FOUND_PAGE,
    Failure,
    rate_limited,
)
from snsync.sandbox.servicenow.loader import load_instance
from snsync.sandbox.servicenow.pool import Gate, RateLimiter
from snsync.sandbox.servicenow.routes import TableApi, parse_route
from snsync.sandbox.servicenow.store import Store
from snsync.sandbox.servicenow.values import timestamp, utc_now


class ServiceNowApp:
    """A ServiceNow instance serving one fixture; implements `snsync.sandbox.server.App`."""

    def __init__(
        self,
        instance: Mapping[str, Any],
        *,
        rate_limit_per_hour: int | None = None,
        max_concurrent: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if rate_limit_per_hour is not None and rate_limit_per_hour < 1:
            raise ValueError("rate_limit_per_hour must be at least 1")
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._clock = clock or utc_now
        loaded = load_instance(instance, timestamp(self._clock()))
        self._store = Store(loaded.specs, loaded.rows)
        self._lock = threading.RLock()
        self._logins = Logins(loaded.accounts, loaded.clients, self._store, self._lock, self._clock)
        self._limiter = RateLimiter(rate_limit_per_hour, self._clock)
        self._gate = Gate(max_concurrent)
        self._api = TableApi(self._store, self._lock, lambda: timestamp(self._clock()))
        self._batch = BatchApi(self._api, self._limiter, self._gate)

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request, holding a concurrency slot while doing so."""
        with self._gate.slot():
            try:
                return self._handle(request)
            except Failure as failure:
                return failure.response()
            except Exception as exc:  # a sandbox bug: answer as an instance would, visibly
                return Failure(500, "Internal server error", f"{exc!r}").response()

    def fault_response(self, status: int, retry_after: int) -> Response:
        """An injected fault as an instance sends it: rate-limit JSON or a maintenance page."""
        if status == 429:
            reset = int(self._clock().timestamp()) + retry_after
            return rate_limited(retry_after, reset, None).response()
        if status == 503:
            return Response(
                503,
                MAINTENANCE_PAGE,
                {"Content-Type": "text/html;charset=UTF-8", "Retry-After": str(retry_after)},
            )
        return Failure(status, HTTPStatus(status).phrase, None).response()

    def records(self, table: str) -> list[dict[str, str]]:
        """Copies of a table's stored records with raw values, in insertion order."""
        with self._lock:
            if table not in self._store.specs:
                raise KeyError(f"unknown table {table}")
            return [dict(record) for record in self._store.rows[table].values()]

    def write_count(self) -> int:
        """Successful POST/PUT/PATCH/DELETE calls so far, those inside batches included."""
        return self._api.write_count()

    def set_concurrency_latency(self, ms: float) -> None:
        """Time each API call spends while holding its concurrency slot (a busy node)."""
        self._gate.latency_s = max(ms, 0.0) / 1000.0

    def peak_concurrency(self) -> int:
        """The most requests that were ever being worked on at once."""
        return self._gate.peak

    def _handle(self, request: Request) -> Response:
        route = parse_route(request.path)
        if route.kind == "oauth":
            self._gate.pause()
            return self._logins.token_endpoint(request)
        if route.kind == "none":
            return Response(404, NOT_FOUND_PAGE, {"Content-Type": "text/html;charset=UTF-8"})
        account = self._logins.authenticate(request)
        if route.kind == "batch":
            return self._batch.answer(request, account)
        self._gate.pause()
        if not self._limiter.take(account.user_name):
            raise self._limiter.rejection(account.user_name)
        return self._api.answer(route, request, account)
