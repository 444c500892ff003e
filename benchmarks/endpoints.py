"""Requests by endpoint, as the sandbox's servers see them: a wrapper around a sandbox app that
counts each request under its method and path (ids replaced by `{id}`), and the sub-requests of
ServiceNow and Graph batches under `batch> METHOD path`. It runs in the sandbox's process, so
counting costs snsync nothing."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from snsync.sandbox.server import App, Request, Response

BATCH_PREFIX = "batch> "
_ID = re.compile(
    r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}|[^/@]+@[^/]+)$"
)
_BATCH_PATHS = ("/api/now/v1/batch", "/api/now/batch", "/v1.0/$batch")


def endpoint(method: str, path: str) -> str:
    """`METHOD /path` with ids (sys_ids, GUIDs, user principal names) as `{id}`."""
    parts = urlsplit(path).path.split("/")
    return f"{method.upper()} " + "/".join("{id}" if _ID.match(p) else p for p in parts)


class EndpointCounter:
    """An `App` that counts requests by endpoint and hands them to the real app."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def handle(self, request: Request) -> Response:
        """Count, then answer as the wrapped app does."""
        names = [endpoint(request.method, request.path)]
        if request.method == "POST" and request.path.rstrip("/") in _BATCH_PATHS:
            names += [BATCH_PREFIX + name for name in _batch_items(request.body, request.path)]
        with self._lock:
            self._counts.update(names)
        return self.app.handle(request)

    def fault_response(self, status: int, retry_after: int) -> Response:
        """The wrapped app's throttling and unavailable answers."""
        return self.app.fault_response(status, retry_after)

    def counts(self) -> dict[str, int]:
        """Requests so far by endpoint."""
        with self._lock:
            return dict(self._counts)


def _batch_items(body: bytes, path: str) -> list[str]:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return []
    key = "requests" if path.startswith("/v1.0") else "rest_requests"
    items = payload.get(key) if isinstance(payload, dict) else None
    prefix = "/v1.0" if key == "requests" else ""
    names = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping):
            url = str(item.get("url", ""))
            if prefix and not url.startswith("/v1.0"):
                url = prefix + ("" if url.startswith("/") else "/") + url
            names.append(endpoint(str(item.get("method", "GET")), url))
    return names


def difference(now: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    """Counts made between two snapshots."""
    return {k: n - before.get(k, 0) for k, n in now.items() if n != before.get(k, 0)}
