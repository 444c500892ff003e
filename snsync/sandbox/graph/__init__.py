"""The sandbox's Azure AD: the Microsoft identity platform token service (the authority host) and
Microsoft Graph v1.0 on one HTTPS listener, both driven by a tenant fixture.

Faithful enough that MSAL, the Microsoft Graph SDK and plain `requests` Graph clients written for
the real services work unchanged, and fail the same way (error shapes, codes, paging, delta,
throttling). The fixture format, the endpoints and the known differences are in
docs/sandbox-graph.md. The package's modules, by job: `catalog` (property catalogues and
permissions), `directory` (tenant state and change log), `fixture` (loading and validation),
`tokens` and `assertions` (the token service), `service` (plumbing, $batch), `routes` with
`users`, `groups`, `apps` and `routing` (the endpoints), `paging`, `delta`, `odata_filter`, and
`wire` (errors and encoding).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from snsync.sandbox.graph.catalog import (
    ASSIGNMENT_PROPERTIES,
    DEFAULT_ACCESS_ROLE_ID,
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    GROUP_DEFAULT_SELECT,
    GROUP_PROPERTIES,
    JWT_BEARER,
    KNOWN_PERMISSIONS,
    SP_PROPERTIES,
    USER_DEFAULT_SELECT,
    USER_PROPERTIES,
)
from snsync.sandbox.graph.fixture import load_directory, load_tenant_file
from snsync.sandbox.graph.options import GraphOptions
from snsync.sandbox.graph.service import GraphService
from snsync.sandbox.graph.tokens import TokenService
from snsync.sandbox.graph_settings import DEFAULT_RESOURCE_UNITS
from snsync.sandbox.server import Request, Response

__all__ = [
    "ASSIGNMENT_PROPERTIES",
    "DEFAULT_ACCESS_ROLE_ID",
    "DEFAULT_RESOURCE_UNITS",
    "GRAPH_APP_ID",
    "GRAPH_RESOURCE",
    "GROUP_DEFAULT_SELECT",
    "GROUP_PROPERTIES",
    "JWT_BEARER",
    "KNOWN_PERMISSIONS",
    "SP_PROPERTIES",
    "USER_DEFAULT_SELECT",
    "USER_PROPERTIES",
    "GraphApp",
    "GraphOptions",
    "load_tenant_file",
]


class GraphApp:
    """Token service + Graph v1.0 for one tenant fixture (an `snsync.sandbox.server.App`)."""

    def __init__(
        self,
        tenant: Mapping[str, Any],
        *,
        token_lifetime_s: int = 3599,
        clock: Callable[[], float] | None = None,
        options: GraphOptions | None = None,
        **behaviour: Any,
    ) -> None:
        """`options` (or `GraphOptions` fields as keywords, e.g. `delta_page_size=10`) tune the
        service's behaviours; the defaults are the real service's."""
        self._clock = clock or time.time
        self._directory = load_directory(tenant, self._clock)
        self.tenant_id = self._directory.tenant_id
        self._tokens = TokenService(self._directory, token_lifetime_s, self._clock)
        self.options = replace(options or GraphOptions(), **behaviour)
        self._graph = GraphService(self._directory, self._tokens, self.options, self._clock)

    def handle(self, request: Request) -> Response:
        """Answer one request: Graph under /v1.0 (and /beta), the token service elsewhere."""
        first = request.path.lstrip("/").split("/", 1)[0].lower()
        if first in ("v1.0", "beta"):
            return self._graph.handle(request)
        return self._tokens.handle(request)

    def fault_response(self, status: int, retry_after: int) -> Response:
        """Graph's own shape of a throttled (429) or unavailable (503) answer."""
        return self._graph.fault(status, retry_after)

    def expire_delta_tokens(self) -> None:
        """Make every delta token (and delta paging token) issued so far answer syncStateNotFound
        (400, or 410 with `delta_expired_status=410`) when used."""
        self._graph.expire_delta_tokens()

    def request_count(self) -> int:
        """Graph operations served: each request, and each item of a $batch (not the envelope)."""
        return self._graph.request_count()

    def throttled_count(self) -> int:
        """Requests (and $batch items) answered 429 for want of resource units."""
        return self._graph.throttled_count()

    def hard_delete_user(self, user_id: str) -> None:
        """Purge a user as Azure AD does 30 days after a soft delete (delta then says "deleted")."""
        with self._directory.lock:
            if user_id.lower() not in self._directory.users:
                raise KeyError(user_id)
            self._directory.hard_delete_user(user_id.lower())
