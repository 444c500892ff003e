"""One Graph call routed to its handler."""

from __future__ import annotations

import re
from collections.abc import Callable

from snsync.sandbox.graph.apps import AppRoutes
from snsync.sandbox.graph.groups import GroupRoutes
from snsync.sandbox.graph.users import UserRoutes
from snsync.sandbox.graph.wire import GraphError, segment_not_found
from snsync.sandbox.server import Response


class Routes(UserRoutes, GroupRoutes, AppRoutes):
    """Routes one Graph call to its handler; runs under the directory lock."""

    def dispatch(self) -> Response:
        segments = self.call.segments
        if not segments:
            raise GraphError(400, "BadRequest", "Resource not found for the segment ''.")
        head, rest = segments[0], segments[1:]
        alternate = re.fullmatch(r"servicePrincipals\(appId='([^']*)'\)", head, re.IGNORECASE)
        if alternate:
            return self._service_principals([self._sp_by_app_id(alternate.group(1)), *rest])
        handlers: dict[str, Callable[[list[str]], Response]] = {
            "users": self._users,
            "groups": self._groups,
            "serviceprincipals": self._service_principals,
            "directoryobjects": self._directory_objects,
        }
        handler = handlers.get(head.lower())
        if handler is None:
            raise segment_not_found(head)
        return handler(rest)
