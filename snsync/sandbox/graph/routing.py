"""What every Graph route handler shares: the call, permission and method checks, and the
rendering of users, directory objects and assignments that several routes return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from snsync.sandbox.graph.catalog import (
    ASSIGNMENT_CATALOG,
    ASSIGNMENT_PROPERTIES,
    DIRECTORY_OBJECT_CATALOG,
    GROUP_CATALOG,
    GROUP_DEFAULT_SELECT,
    GROUP_NAMES,
    GROUP_TYPE,
    READ_USERS,
    USER_CATALOG,
    USER_DEFAULT_SELECT,
    USER_NAMES,
    USER_TYPE,
)
from snsync.sandbox.graph.odata_filter import ODataFilter
from snsync.sandbox.graph.paging import (
    LIST_OPTIONS,
    Pager,
    parse_select,
    render_props,
    select_suffix,
)
from snsync.sandbox.graph.wire import (
    METHOD_NOT_ALLOWED,
    Call,
    GraphError,
    not_found,
    segment_not_found,
)
from snsync.sandbox.server import Response

if TYPE_CHECKING:
    from snsync.sandbox.graph.service import GraphService


class RouteBase:
    """The call being answered and the helpers every route handler uses."""

    def __init__(self, service: GraphService, call: Call) -> None:
        self.service = service
        self.call = call
        self.directory = service.directory

    # -- helpers -----------------------------------------------------------------------------

    def require(self, permissions: frozenset[str]) -> None:
        if not self.call.principal.roles & permissions:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

    def method(self, *allowed: str) -> str:
        if self.call.method not in allowed:
            raise GraphError(405, "Request_BadRequest", METHOD_NOT_ALLOWED)
        return self.call.method

    def context(self, fragment: str) -> str:
        return f"{self.call.base_url}/v1.0/$metadata#{fragment}"

    def body_object(self) -> dict[str, Any]:
        if self.call.body is None:
            raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        if not isinstance(self.call.body, dict):
            raise GraphError(400, "BadRequest", "Invalid request body: expected a JSON object.")
        return self.call.body

    def write_body(self, resource: str) -> dict[str, Any]:
        """A write's JSON object without its `@odata.type`, which Graph (and its SDKs, which
        always send it) may name only the resource's own type."""
        body = dict(self.body_object())
        odata_type = body.pop("@odata.type", None)
        expected = f"#microsoft.graph.{resource[0].lower()}{resource[1:]}"
        if odata_type is not None and str(odata_type).lower() != expected.lower():
            raise GraphError(
                400,
                "BadRequest",
                f"A type named '{str(odata_type).lstrip('#')}' could not be resolved for "
                f"resource '{resource}'; expected '{expected}'.",
            )
        return body

    def no_query_options(self, *allowed: str) -> None:
        for name in self.call.query:
            if name.startswith("$") and name.lower() not in allowed:
                raise GraphError(
                    400, "Request_BadRequest", f"The query parameter '{name}' is not supported."
                )

    def _user_or_404(self, key: str) -> dict[str, Any]:
        user = self.directory.user(key)
        if user is None:
            raise not_found(key)
        return user

    def _visible_manager(self, user_id: str) -> dict[str, Any] | None:
        manager_id = self.directory.managers.get(user_id)
        return self.directory.user(manager_id) if manager_id else None

    def render_user(
        self,
        user: Mapping[str, Any],
        select: list[str] | None,
        expand: list[str] | None,
        *,
        limited: bool = False,
    ) -> dict[str, Any]:
        """A user as Graph returns it: the selected (or default) properties, manager expanded."""
        out = render_props(user, USER_DEFAULT_SELECT if select is None else select, limited=limited)
        if expand is not None:
            manager = self._visible_manager(user["id"])
            if manager is not None:
                out["manager"] = {
                    "@odata.type": USER_TYPE,
                    **render_props(manager, expand or USER_DEFAULT_SELECT),
                }
        return out

    def _directory_object_list(self, ids: list[str], cast: list[str]) -> Response:
        self.no_query_options(*LIST_OPTIONS)
        kinds = {"microsoft.graph.user": "user", "microsoft.graph.group": "group"}
        wanted = None
        if cast:
            wanted = kinds.get(cast[0].lower())
            if wanted is None:
                raise segment_not_found(cast[0])
        catalog = USER_CATALOG if wanted == "user" else GROUP_CATALOG if wanted else None
        select = parse_select(self.call.query, catalog or DIRECTORY_OBJECT_CATALOG)
        predicate = ODataFilter.parse(
            self.call, catalog or DIRECTORY_OBJECT_CATALOG, "DirectoryObject"
        )
        rows = []
        for object_id in ids:
            kind = self.directory.kind_of(object_id)
            if wanted and kind != wanted:
                continue
            source = self.directory.users if kind == "user" else self.directory.groups
            if predicate(source[object_id]):
                rows.append((object_id, object_id))
        context = {"user": "users", "group": "groups"}.get(wanted or "", "directoryObjects")
        return Pager(self, rows, f"{context}{select_suffix(select)}").answer(
            lambda object_id: self.render_object(object_id, select)
        )

    def render_object(self, object_id: str, select: list[str] | None) -> dict[str, Any]:
        """A user or group in a directoryObject collection, tagged with @odata.type."""
        if self.directory.kind_of(object_id) == "user":
            user = self.directory.users[object_id]
            names = [n for n in select if n in USER_NAMES] if select else None
            # An app that may read memberships but not users sees user members' ids only.
            limited = not self.call.principal.roles & READ_USERS
            return {
                "@odata.type": USER_TYPE,
                **self.render_user(user, names, None, limited=limited),
            }
        group = self.directory.groups[object_id]
        group_names = [n for n in select if n in GROUP_NAMES] if select else GROUP_DEFAULT_SELECT
        return {"@odata.type": GROUP_TYPE, **render_props(group, group_names)}

    def _assignment_list(self, rows: list[dict[str, Any]], context: str) -> Response:
        self.no_query_options(*LIST_OPTIONS)
        select = parse_select(self.call.query, ASSIGNMENT_CATALOG)
        predicate = ODataFilter.parse(self.call, ASSIGNMENT_CATALOG, "AppRoleAssignment")
        views = [self.render_assignment(a) for a in rows]
        paged = [(view["id"], view) for view in views if predicate(view)]
        return Pager(self, paged, context).answer(
            lambda view: render_props(view, select or ASSIGNMENT_PROPERTIES)
        )

    def render_assignment(self, assignment: Mapping[str, Any]) -> dict[str, Any]:
        """An appRoleAssignment with its live display names."""
        principal = assignment["principalId"]
        kind = self.directory.kind_of(principal)
        source = self.directory.users if kind == "user" else self.directory.groups
        sp = self.directory.service_principal
        return {
            "id": assignment["id"],
            "deletedDateTime": None,
            "appRoleId": assignment["appRoleId"],
            "createdDateTime": assignment["createdDateTime"],
            "principalDisplayName": source[principal].get("displayName"),
            "principalId": principal,
            "principalType": "User" if kind == "user" else "Group",
            "resourceDisplayName": sp["displayName"],
            "resourceId": sp["id"],
        }
