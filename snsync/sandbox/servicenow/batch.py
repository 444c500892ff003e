"""The Batch API: sub-requests run one after another, as the same account, through the same
Table API code as direct calls; what the rate limit leaves out comes back unserviced."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from snsync.sandbox.server import Request, Response
from snsync.sandbox.servicenow.acl import Account
from snsync.sandbox.servicenow.failure import Failure
from snsync.sandbox.servicenow.pool import NodePool, RateLimiter
from snsync.sandbox.servicenow.routes import Route, TableApi, json_object, parse_route

BATCH_TIME_LIMIT_S = 30.0  # after this long, the rest of a batch comes back unserviced


class BatchApi:
    """Answers POST /api/now/v1/batch."""

    def __init__(
        self,
        api: TableApi,
        limiter: RateLimiter,
        pool: NodePool,
        time_limit_s: float = BATCH_TIME_LIMIT_S,
    ) -> None:
        self._api = api
        self._limiter = limiter
        self._pool = pool
        self._time_limit_s = time_limit_s

    def answer(self, request: Request, account: Account) -> Response:
        """Run the batch's sub-requests in order and report each."""
        if request.method != "POST":
            raise Failure(405, "Method not Supported", f"{request.method} method not supported")
        payload = json_object(request)
        items = payload.get("rest_requests")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise Failure(400, "Exception while reading request", "rest_requests must be a list")
        serviced: list[dict[str, Any]] = []
        unserviced: list[str] = []
        started = time.monotonic()
        for item in items:
            late = time.monotonic() - started >= self._time_limit_s
            if late or not self._limiter.take(account.user_name):
                unserviced.append(str(item.get("id", "")))
                continue
            self._pool.pause()  # sub-requests run one after another on the node
            serviced.append(self._sub_request(item, request, account))
        if items and not serviced:
            raise self._limiter.rejection(account.user_name)
        return Response(
            200,
            {
                "batch_request_id": str(payload.get("batch_request_id", "")),
                "serviced_requests": serviced,
                "unserviced_requests": unserviced,
            },
        )

    def _sub_request(
        self, item: Mapping[str, Any], outer: Request, account: Account
    ) -> dict[str, Any]:
        started = time.monotonic()
        try:
            sub = batched_request(item, outer)
            route = parse_route(sub.path)
            if route.kind in ("batch", "oauth", "none"):
                route = Route("unknown")  # a batch may not nest batches or reach non-API pages
            response = self._api.answer(route, sub, account)
        except Failure as failure:
            response = failure.response()
        return serviced_item(item, response, time.monotonic() - started)


def serviced_item(item: Mapping[str, Any], response: Response, seconds: float) -> dict[str, Any]:
    """One entry of `serviced_requests`."""
    payload, content_type = response.encoded()
    headers = [{"name": k, "value": v} for k, v in response.headers.items()]
    if content_type:
        headers.append({"name": "Content-Type", "value": content_type})
    return {
        "id": str(item.get("id", "")),
        "status_code": response.status,
        "status_text": HTTPStatus(response.status).phrase,
        "headers": [] if item.get("exclude_response_headers") is True else headers,
        "body": base64.b64encode(payload).decode(),
        "execution_time": int(seconds * 1000),
    }


def batched_request(item: Mapping[str, Any], outer: Request) -> Request:
    """A sub-request as a plain Request, with the outer request's base URL."""
    url = str(item.get("url", ""))
    parts = urlsplit(url)
    headers: dict[str, str] = {}
    for header in item.get("headers") or []:
        if isinstance(header, dict) and "name" in header:
            headers[str(header["name"]).lower()] = str(header.get("value", ""))
    try:
        body = base64.b64decode(str(item.get("body") or ""), validate=True)
    except binascii.Error:
        raise Failure(400, "Exception while reading request", "body is not base64") from None
    return Request(
        method=str(item.get("method", "GET")).upper(),
        path=unquote(parts.path),
        raw_path=url,
        query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
        headers=headers,
        body=body,
        base_url=outer.base_url,
    )
