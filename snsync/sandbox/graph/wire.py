"""Graph's wire format: the error and call types, sealed paging/delta tokens, response encoding
(headers Graph always sends) and small text helpers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from snsync.sandbox.server import Response

if TYPE_CHECKING:
    from snsync.sandbox.graph.directory import Principal


class GraphError(Exception):
    """A Graph error answer."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Call:
    """One Graph operation: a top-level request or one item of a $batch."""

    method: str
    path: str  # below /v1.0/, no leading slash, percent-decoded
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    base_url: str
    principal: Principal
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    @property
    def client_request_id(self) -> str:
        return self.headers.get("client-request-id") or self.request_id


class Sealer:
    """Opaque, tamper-evident paging and delta tokens (HMAC-signed JSON)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def seal(self, payload: Mapping[str, Any]) -> str:
        data = json.dumps(payload, separators=(",", ":")).encode()
        mac = hmac.new(self._key, data, hashlib.sha256).digest()[:12]
        return b64url(data) + "." + b64url(mac)

    def open(self, token: str) -> dict[str, Any] | None:
        data_text, _, mac_text = token.partition(".")
        try:
            data = b64url_decode(data_text)
            mac = b64url_decode(mac_text)
        except ValueError:
            return None
        expected = hmac.new(self._key, data, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(mac, expected):
            return None
        payload = json.loads(data)
        return payload if isinstance(payload, dict) else None


METHOD_NOT_ALLOWED = "Specified HTTP method is not allowed for the request uri."
GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)


def parse_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type "
            "header is set and payload is of valid JSON format.",
        ) from None


def bearer_token(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
        "not present.",
    )


def segment_not_found(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def encode_reply(reply: Response, request_id: str, client_request_id: str) -> Response:
    headers = {
        "Cache-Control": "no-cache",
        "OData-Version": "4.0",
        "request-id": request_id,
        "client-request-id": client_request_id,
        "x-ms-ags-diagnostic": json.dumps(
            {"ServerInfo": {"DataCenter": "Sandbox", "Slice": "E", "Ring": "1"}}
            | {"ScaleUnit": "000", "RoleInstance": "snsync-sandbox"}
        ),
        "Strict-Transport-Security": "max-age=31536000",
        **reply.headers,
    }
    if reply.body is None:
        return Response(reply.status, None, headers)
    headers["Content-Type"] = GRAPH_CONTENT_TYPE
    return Response(reply.status, json.dumps(reply.body).encode(), headers)


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    merged = {
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "Content-Type": "application/json; charset=utf-8",
        "x-ms-ests-server": "2.1.0 - snsync sandbox",
        **(headers or {}),
    }
    return Response(status, json.dumps(body).encode(), merged)


def plain_not_found() -> Response:
    return Response(404, b"", {"Content-Type": "text/html"})


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
