"""Graph v1.0 over a `Directory`: authentication of each call, operation counting, throttling,
$batch and the hand-over to the routes.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from snsync.sandbox.graph.batch import Batch
from snsync.sandbox.graph.catalog import GRAPH_APP_ID
from snsync.sandbox.graph.directory import Directory
from snsync.sandbox.graph.options import GraphOptions
from snsync.sandbox.graph.routes import Routes
from snsync.sandbox.graph.throttle import ResourceBudget
from snsync.sandbox.graph.tokens import TokenService
from snsync.sandbox.graph.wire import (
    Call,
    GraphError,
    Sealer,
    bearer_token,
    encode_reply,
    parse_body,
)
from snsync.sandbox.server import Request, Response


class GraphService:
    """Graph v1.0 over a `Directory`: auth, throttling, routing, paging, delta and $batch."""

    def __init__(
        self,
        directory: Directory,
        tokens: TokenService,
        options: GraphOptions,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self.options = options
        self._tokens = tokens
        self._clock = clock
        self._budget = (
            ResourceBudget(
                options.resource_units, options.resource_window_s, directory.tenant_id, clock
            )
            if options.resource_units
            else None
        )
        self._sealer = Sealer()
        self._generation = 0
        self._count = 0
        self._count_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request under /v1.0."""
        request_id = str(uuid.uuid4())
        client_request_id = request.header("client-request-id") or request_id
        try:
            call = self._call(request, request_id)
            batch = call.path.lower() == "$batch"
            reply = Batch(self).answer(call) if batch else self.operation(call)
        except GraphError as exc:
            reply = self.error_reply(exc, request_id, client_request_id)
        except Exception as exc:  # a sandbox bug: answer 500 rather than drop the connection
            error = GraphError(500, "generalException", f"snsync sandbox: {exc!r}")
            reply = self.error_reply(error, request_id, client_request_id)
        return encode_reply(reply, request_id, client_request_id)

    def fault(self, status: int, retry_after: int) -> Response:
        """Graph's answer to an injected fault."""
        code, message = {
            429: ("TooManyRequests", "Too many requests."),
            503: ("serviceNotAvailable", "Service unavailable. Please try again later."),
        }.get(status, ("generalException", "An unexpected error occurred."))
        request_id = str(uuid.uuid4())
        error = GraphError(status, code, message, {"Retry-After": str(retry_after)})
        return encode_reply(self.error_reply(error, request_id, request_id), request_id, request_id)

    def expire_delta_tokens(self) -> None:
        with self.directory.lock:
            self._generation += 1

    def request_count(self) -> int:
        with self._count_lock:
            return self._count

    def throttled_count(self) -> int:
        """Requests answered 429 because the app's resource-unit budget could not pay them."""
        return self._budget.refused if self._budget else 0

    # -- request plumbing ---------------------------------------------------------------------

    def _call(self, request: Request, request_id: str) -> Call:
        version, _, rest = request.path.lstrip("/").partition("/")
        if version.lower() != "v1.0":
            raise GraphError(400, "BadRequest", "This sandbox serves Microsoft Graph v1.0 only.")
        principal = self._tokens.verify(
            bearer_token(request.header("authorization")), request.base_url
        )
        return Call(
            method="GET" if request.method == "HEAD" else request.method,
            path=rest,
            query=request.query,
            headers=request.headers,
            body=parse_body(request.body),
            base_url=request.base_url,
            principal=principal,
            request_id=request_id,
        )

    def operation(self, call: Call) -> Response:
        """Count, maybe throttle, then route one operation under the directory lock; a served
        operation is charged its resource units (failed ones cost nothing)."""
        every = self.options.throttle_every
        with self._count_lock:
            self._count += 1
            throttled = bool(every and self._count % every == 0)
        if throttled:
            raise GraphError(429, "TooManyRequests", "Too many requests.", {"Retry-After": "1"})
        cost = self._budget.check(call) if self._budget else 0
        with self.directory.lock:
            reply = Routes(self, call).dispatch()
        if self._budget and reply.status < 400:
            reply.headers.update(self._budget.charge(call, cost))
        return reply

    def error_reply(self, exc: GraphError, request_id: str, client_request_id: str) -> Response:
        body = {
            "error": {
                "code": exc.code,
                "message": exc.message,
                "innerError": {
                    "date": datetime.fromtimestamp(self._clock(), UTC).strftime(
                        "%Y-%m-%dT%H:%M:%S"
                    ),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                f'oauth2/authorize", client_id="{GRAPH_APP_ID}"'
            )
        return Response(exc.status, body, headers)

    # -- shared helpers for routes ------------------------------------------------------------

    def seal(self, payload: Mapping[str, Any]) -> str:
        return self._sealer.seal(payload)

    def open_token(self, token: str, name: str) -> dict[str, Any]:
        payload = self._sealer.open(token)
        if payload is None:
            raise GraphError(400, "Request_BadRequest", f"Invalid {name} value '{token[:40]}'.")
        return payload

    @property
    def generation(self) -> int:
        return self._generation

    def now(self) -> float:
        return self._clock()
