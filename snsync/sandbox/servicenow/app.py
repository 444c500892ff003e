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
from snsync.sandbox.servicenow.batch import BATCH_TIME_LIMIT_S, BatchApi
from snsync.sandbox.servicenow.costs import ServerCosts
from snsync.sandbox.servicenow.failure import (
    DEFAULT_URL_LIMIT,
    HEADER_TOO_LARGE_PAGE,
    MAINTENANCE_PAGE,
    NOT_FOUND_PAGE,
    URL_LIMIT_RANGE,
    Failure,
    header_bytes,
    rate_limited,
)
from snsync.sandbox.servicenow.loader import load_instance
from snsync.sandbox.servicenow.pool import (
    DEFAULT_CONCURRENCY,
    DEFAULT_NODES,
    DEFAULT_QUEUE,
    NodePool,
    RateLimiter,
)
from snsync.sandbox.servicenow.routes import TableApi, parse_route
from snsync.sandbox.servicenow.sessions import Sessions
from snsync.sandbox.servicenow.store import Store
from snsync.sandbox.servicenow.values import timestamp, utc_now


class ServiceNowApp:
    """A ServiceNow instance serving one fixture; implements `snsync.sandbox.server.App`."""

    def __init__(
        self,
        instance: Mapping[str, Any],
        *,
        rate_limit_per_hour: int | None = None,
        max_concurrent: int | None = DEFAULT_CONCURRENCY,
        queue: int | None = DEFAULT_QUEUE,
        serialize_sessions: bool = True,
        batch_time_limit_s: float = BATCH_TIME_LIMIT_S,
        url_limit_bytes: int = DEFAULT_URL_LIMIT,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        for name, value in (
            ("rate_limit_per_hour", rate_limit_per_hour),
            ("max_concurrent", max_concurrent),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        if queue is not None and queue < 0:
            raise ValueError("queue must be at least 0")
        if not URL_LIMIT_RANGE[0] <= url_limit_bytes <= URL_LIMIT_RANGE[1]:
            raise ValueError("url_limit_bytes must be between 8192 and 23552")
        self._url_limit = url_limit_bytes
        self._clock = clock or utc_now
        loaded = load_instance(instance, timestamp(self._clock()))
        self._store = Store(loaded.specs, loaded.rows)
        self._lock = threading.RLock()
        self._logins = Logins(loaded.accounts, loaded.clients, self._store, self._lock, self._clock)
        self._limiter = RateLimiter(rate_limit_per_hour, self._clock)
        self._pool = NodePool(max_concurrent, queue, DEFAULT_NODES)
        self._sessions = Sessions(self._pool.nodes, serialize=serialize_sessions)
        self._api = TableApi(
            self._store,
            self._lock,
            lambda: timestamp(self._clock()),
            loaded.read_rules,
            self._pool.pause,
        )
        self._batch = BatchApi(self._api, self._limiter, self._pool, batch_time_limit_s)

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request inside its session and a thread of the session's node."""
        if header_bytes(request) > self._url_limit:
            # The web tier refuses it before any session or API code sees it (KB0826932).
            return Response(400, HEADER_TOO_LARGE_PAGE, {"Content-Type": "text/html;charset=utf-8"})
        session, cookies = self._sessions.join(request.header("Cookie"))
        try:
            with self._sessions.serving(session), self._pool.slot(session.node):
                response = self._answer(request)
        except Failure as failure:  # the node's queue is full
            response = failure.response()
        response.cookies = cookies
        return response

    def sessions_created(self) -> int:
        """How many sessions the instance has started (one per request that sent no cookie)."""
        return self._sessions.created

    def _answer(self, request: Request) -> Response:
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

    def row_count(self, table: str) -> int:
        """How many records a table holds (no copies: for counters on large tables)."""
        with self._lock:
            if table not in self._store.specs:
                raise KeyError(f"unknown table {table}")
            return len(self._store.rows[table])

    def write_count(self) -> int:
        """Successful POST/PUT/PATCH/DELETE calls so far, those inside batches included."""
        return self._api.write_count()

    def set_concurrency_latency(self, ms: float) -> None:
        """Time each API call spends while holding its concurrency slot (a busy node)."""
        self._pool.latency_s = max(ms, 0.0) / 1000.0

    def set_costs(self, costs: ServerCosts) -> None:
        """Server time per row read and per record written (see `snsync.sandbox.profiles`)."""
        self._api.costs = costs

    def peak_concurrency(self) -> int:
        """The most requests that were ever being worked on at once."""
        return self._pool.peak

    def _handle(self, request: Request) -> Response:
        route = parse_route(request.path)
        if route.kind == "oauth":
            self._pool.pause()
            return self._logins.token_endpoint(request)
        if route.kind == "none":
            return Response(404, NOT_FOUND_PAGE, {"Content-Type": "text/html;charset=UTF-8"})
        account = self._logins.authenticate(request)
        if route.kind == "batch":
            response = self._batch.answer(request, account)
        else:
            self._pool.pause()
            if not self._limiter.take(account.user_name):
                raise self._limiter.rejection(account.user_name)
            try:
                response = self._api.answer(route, request, account)
            except Failure as failure:
                response = failure.response()
        response.headers.update(self._limiter.headers())
        return response
