"""JSON batching: `POST /v1.0/$batch`, at most 20 requests, each answered on its own (and
throttled, counted and charged on its own)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from snsync.sandbox.graph.catalog import MAX_BATCH
from snsync.sandbox.graph.wire import GRAPH_CONTENT_TYPE, METHOD_NOT_ALLOWED, Call, GraphError
from snsync.sandbox.server import Response

if TYPE_CHECKING:
    from snsync.sandbox.graph.service import GraphService


class Batch:
    """Answers one $batch envelope through the service's per-operation path."""

    def __init__(self, service: GraphService) -> None:
        self.service = service

    def answer(self, call: Call) -> Response:
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
            reply = self.service.operation(self._item_call(envelope, item, request_id))
        except GraphError as exc:
            reply = self.service.error_reply(exc, request_id, request_id)
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
