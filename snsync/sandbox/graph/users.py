"""Graph routes under /users."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from snsync.sandbox.graph.catalog import (
    DELETE_USERS,
    DELTA_SEGMENTS,
    READ_ASSIGNMENTS,
    READ_DIRECTORY_OBJECTS,
    READ_USERS,
    USER_CATALOG,
    USER_READ_ONLY,
    USER_REQUIRED_ON_CREATE,
    USER_TYPE,
    WRITE_USERS,
)
from snsync.sandbox.graph.delta import Delta
from snsync.sandbox.graph.odata_filter import ODataFilter
from snsync.sandbox.graph.paging import (
    LIST_OPTIONS,
    Pager,
    parse_expand_manager,
    parse_select,
    reference_id,
    select_suffix,
)
from snsync.sandbox.graph.routing import RouteBase
from snsync.sandbox.graph.wire import GraphError, iso, not_found, segment_not_found
from snsync.sandbox.server import Response


class UserRoutes(RouteBase):
    """users, users/{id}, manager, memberOf, appRoleAssignments and users/delta."""

    def _users(self, rest: list[str]) -> Response:
        if not rest:
            if self.method("GET", "POST") == "POST":
                return self._create_user()
            return self._list_users()
        key, tail = rest[0], [s.lower() for s in rest[1:]]
        if key.lower() in DELTA_SEGMENTS and not tail:
            self.method("GET")
            self.require(READ_USERS)
            return Delta(self, "users").answer()
        if not tail:
            return self._user_item(key)
        user = self._user_or_404(key)
        if tail == ["manager"]:
            self.method("GET")
            self.require(READ_USERS)
            return self._manager(user)
        if tail == ["manager", "$ref"]:
            return self._manager_ref(user)
        if tail[0] in ("memberof", "transitivememberof") and len(tail) <= 2:
            self.method("GET")
            self.require(READ_DIRECTORY_OBJECTS)
            ids = (
                self.directory.member_of(user["id"])
                if tail[0] == "memberof"
                else self.directory.transitive_member_of(user["id"])
            )
            return self._directory_object_list(ids, tail[1:])
        if tail == ["approleassignments"]:
            self.method("GET")
            self.require(READ_ASSIGNMENTS)
            rows = [
                a for a in self.directory.visible_assignments() if a["principalId"] == user["id"]
            ]
            return self._assignment_list(rows, f"users('{user['id']}')/appRoleAssignments")
        raise segment_not_found(rest[1])

    def _list_users(self) -> Response:
        self.require(READ_USERS)
        self.no_query_options(*LIST_OPTIONS, "$expand")
        select = parse_select(self.call.query, USER_CATALOG)
        expand = parse_expand_manager(self.call.query)
        predicate = ODataFilter.parse(self.call, USER_CATALOG, "User")
        users, hidden = self.directory.users, self.directory.soft_deleted

        def shown(uid: str) -> dict[str, Any] | None:
            user = users.get(uid)
            return user if user is not None and uid not in hidden and predicate(user) else None

        pager = Pager.over(self, self.directory.user_ids(), shown, f"users{select_suffix(select)}")
        return pager.answer(lambda user: self.render_user(user, select, expand))

    def _user_item(self, key: str) -> Response:
        method = self.method("GET", "PATCH", "DELETE")
        user = self._user_or_404(key)
        if method == "GET":
            self.require(READ_USERS)
            self.no_query_options("$select", "$expand")
            select = parse_select(self.call.query, USER_CATALOG)
            body = {"@odata.context": self.context(f"users{select_suffix(select)}/$entity")}
            body.update(self.render_user(user, select, parse_expand_manager(self.call.query)))
            return Response(200, body)
        if method == "PATCH":
            self.require(WRITE_USERS)
            self.directory.update_user(
                user["id"], self._user_changes(self.write_body("User"), user)
            )
            return Response(204)
        self.require(DELETE_USERS)
        self.directory.soft_delete_user(user["id"])
        return Response(204)

    def _create_user(self) -> Response:
        self.require(WRITE_USERS)
        body = self.write_body("User")
        for name in USER_REQUIRED_ON_CREATE:
            if body.get(name) in (None, ""):
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property '{name}' of resource 'User'.",
                )
        user = {"id": str(uuid.uuid4()), **self._user_changes(body, None)}
        user["createdDateTime"] = iso(self.service.now())
        user.setdefault("userType", "Member")
        user.setdefault("businessPhones", [])
        self.directory.add_user(user, None)
        body = {"@odata.context": self.context("users/$entity")}
        body.update(self.render_user(user, None, None))
        return Response(201, body, {"Location": f"{self.call.base_url}/v1.0/users/{user['id']}"})

    def _user_changes(
        self, body: Mapping[str, Any], user: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in body.items():
            canonical = USER_CATALOG.get(name.lower())
            if canonical is None or name.startswith("@"):
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{name}' does not exist as a declared property or extension "
                    "property.",
                )
            if canonical in USER_READ_ONLY:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{canonical}' is read-only and cannot be set.",
                )
            changes[canonical] = value
        upn = changes.get("userPrincipalName")
        if upn is not None:
            self._check_upn(upn, None if user is None else user["id"])
        if "accountEnabled" in changes and not isinstance(changes["accountEnabled"], bool):
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'accountEnabled' of resource 'User'.",
            )
        return changes

    def _check_upn(self, upn: Any, own_id: str | None) -> None:
        if not isinstance(upn, str) or "@" not in upn:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
            )
        if upn.rsplit("@", 1)[1].lower() not in self.directory.domains:
            raise GraphError(
                400,
                "Request_BadRequest",
                "The domain portion of the userPrincipalName property is invalid. You must use "
                "one of the verified domain names in your organization.",
            )
        owner = self.directory.upn_owner(upn)
        if owner is not None and owner != own_id:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Another object with the same value for property userPrincipalName already exists.",
            )

    def _manager(self, user: Mapping[str, Any]) -> Response:
        self.no_query_options("$select")
        manager = self._visible_manager(user["id"])
        if manager is None:
            raise not_found("manager")
        select = parse_select(self.call.query, USER_CATALOG)
        body = {
            "@odata.context": self.context("directoryObjects/$entity"),
            "@odata.type": USER_TYPE,
        }
        body.update(self.render_user(manager, select, None))
        return Response(200, body)

    def _manager_ref(self, user: Mapping[str, Any]) -> Response:
        method = self.method("GET", "PUT", "DELETE")
        if method == "GET":
            self.require(READ_USERS)
            manager = self._visible_manager(user["id"])
            if manager is None:
                raise not_found("manager")
            return Response(
                200,
                {
                    "@odata.context": self.context("directoryObjects/$entity"),
                    "@odata.id": f"{self.call.base_url}/v1.0/directoryObjects/{manager['id']}"
                    "/Microsoft.DirectoryServices.User",
                },
            )
        self.require(WRITE_USERS)
        if method == "DELETE":
            if self._visible_manager(user["id"]) is None:
                raise not_found("manager")
            self.directory.set_manager(user["id"], None)
            return Response(204)
        manager_id = reference_id(self.body_object())
        if self.directory.kind_of(manager_id) != "user":
            raise not_found(manager_id)
        if manager_id == user["id"]:
            raise GraphError(400, "Request_BadRequest", "A user cannot be their own manager.")
        self.directory.set_manager(user["id"], manager_id)
        return Response(204)
