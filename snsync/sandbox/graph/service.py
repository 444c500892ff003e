"""Graph v1.0 over a `Directory`: authentication of each call, operation counting, throttling,
$batch and the hand-over to the routes.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from snsync.sandbox.graph.catalog import GRAPH_APP_ID, MAX_BATCH
from snsync.sandbox.graph.directory import Directory
from snsync.sandbox.graph.routes import Routes
from snsync.sandbox.graph.tokens import TokenService
from snsync.sandbox.graph.wire import (
    GRAPH_CONTENT_TYPE,
    METHOD_NOT_ALLOWED,
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
        *,
        throttle_every: int | None,
        delta_token_ttl_s: int,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self._tokens = tokens
        self._throttle_every = throttle_every
        self._delta_ttl_s = delta_token_ttl_s
        self._clock = clock
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
            reply = self._batch(call) if batch else self._operation(call)
        except GraphError as exc:
            reply = self._error_reply(exc, request_id, client_request_id)
        except Exception as exc:  # a sandbox bug: answer 500 rather than drop the connection
            error = GraphError(500, "generalException", f"snsync sandbox: {exc!r}")
            reply = self._error_reply(error, request_id, client_request_id)
        return encode_reply(reply, request_id, client_request_id)

    def fault(self, status: int, retry_after: int) -> Response:
        """Graph's answer to an injected fault."""
        code, message = {
            429: ("TooManyRequests", "Too many requests."),
            503: ("serviceNotAvailable", "Service unavailable. Please try again later."),
        }.get(status, ("generalException", "An unexpected error occurred."))
        request_id = str(uuid.uuid4())
        error = GraphError(status, code, message, {"Retry-After": str(retry_after)})
        return encode_reply(
            self._error_reply(error, request_id, request_id), request_id, request_id
        )

    def expire_delta_tokens(self) -> None:
        with self.directory.lock:
            self._generation += 1

    def request_count(self) -> int:
        with self._count_lock:
            return self._count

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

    def _operation(self, call: Call) -> Response:
        """Count, maybe throttle, then route one operation under the directory lock."""
        with self._count_lock:
            self._count += 1
            throttled = bool(self._throttle_every and self._count % self._throttle_every == 0)
        if throttled:
            raise GraphError(
                429,
                "TooManyRequests",
                "Too many requests.",
                {"Retry-After": "1"},
            )
        with self.directory.lock:
            return Routes(self, call).dispatch()

    def _error_reply(self, exc: GraphError, request_id: str, client_request_id: str) -> Response:
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

    # -- $batch -------------------------------------------------------------------------------

    def _batch(self, call: Call) -> Response:
        if call.method != "POST":
            raise GraphError(405, "Request_BadRequest", METHOD_NOT_ALLOWED)
        items = call.body.get("requests") if isinstance(call.body, dict) else None
        if not isinstance(items, list) or not items:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(items) > MAX_BATCH:
            raise GraphError(
                400,
                "BadRequest",
                f"Invalid batch payload format. The number of requests in a batch cannot exceed "
                f"{MAX_BATCH}.",
            )
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique strings.")
        statuses: dict[str, int] = {}
        responses = [self._batch_item(call, item, statuses) for item in items]
        return Response(200, {"responses": responses})

    def _batch_item(
        self, envelope: Call, item: dict[str, Any], statuses: dict[str, int]
    ) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        try:
            depends = item.get("dependsOn") or []
            if any(statuses.get(d, 424) >= 400 for d in depends):
                raise GraphError(424, "BadRequest", "Failed dependency")
            reply = self._operation(self._item_call(envelope, item, request_id))
        except GraphError as exc:
            reply = self._error_reply(exc, request_id, request_id)
        statuses[item["id"]] = reply.status
        headers = {k: v for k, v in reply.headers.items() if k.lower() != "www-authenticate"}
        if reply.body is not None:
            headers["Content-Type"] = GRAPH_CONTENT_TYPE
        answer: dict[str, Any] = {"id": item["id"], "status": reply.status, "headers": headers}
        if reply.body is not None:
            answer["body"] = reply.body
        return answer

    def _item_call(self, envelope: Call, item: Mapping[str, Any], request_id: str) -> Call:
        method, url = item.get("method"), item.get("url")
        if not isinstance(method, str) or not isinstance(url, str) or not url:
            raise GraphError(400, "BadRequest", "A batch request needs a method and a url.")
        if "://" in url:
            raise GraphError(
                400, "BadRequest", "Batch request urls must be relative, e.g. '/users'."
            )
        parts = urlsplit(url)
        raw_headers = item.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise GraphError(400, "BadRequest", "Batch request headers must be an object.")
        headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
        body = item.get("body")
        if body is not None and "content-type" not in headers:
            raise GraphError(
                400, "BadRequest", "Content-Type header must be specified when a body is present."
            )
        if unquote(parts.path).lstrip("/").lower() == "$batch":
            raise GraphError(400, "BadRequest", "A batch request cannot contain a batch.")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return Call(
            method=method.upper(),
            path=unquote(parts.path).lstrip("/"),
            query=query,
            headers=headers,
            body=body,
            base_url=envelope.base_url,
            principal=envelope.principal,
            request_id=request_id,
        )

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

    @property
    def delta_ttl_s(self) -> int:
        return self._delta_ttl_s

    def now(self) -> float:
        return self._clock()
