"""Graph routes under /groups and /directoryObjects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from snsync.sandbox.graph.catalog import (
    DELTA_SEGMENTS,
    DIRECTORY_OBJECT_CATALOG,
    GROUP_CATALOG,
    GROUP_DEFAULT_SELECT,
    GROUP_READ_ONLY,
    MAX_MEMBER_BINDS,
    READ_DIRECTORY_OBJECTS,
    READ_GROUPS,
    WRITE_GROUPS,
    WRITE_MEMBERS,
)
from snsync.sandbox.graph.delta import Delta
from snsync.sandbox.graph.fixture import group_defaults
from snsync.sandbox.graph.odata_filter import ODataFilter
from snsync.sandbox.graph.paging import (
    LIST_OPTIONS,
    Pager,
    parse_select,
    reference_id,
    render_props,
    select_suffix,
)
from snsync.sandbox.graph.routing import RouteBase
from snsync.sandbox.graph.wire import GraphError, iso, not_found, segment_not_found
from snsync.sandbox.server import Response


class GroupRoutes(RouteBase):
    """groups, groups/{id}, members (and $ref), transitiveMembers, groups/delta."""

    def _groups(self, rest: list[str]) -> Response:
        if not rest:
            if self.method("GET", "POST") == "POST":
                return self._create_group()
            return self._list_groups()
        key, tail = rest[0], rest[1:]
        if key.lower() in DELTA_SEGMENTS and not tail:
            self.method("GET")
            self.require(READ_GROUPS)
            return Delta(self, "groups").answer()
        group = self.directory.group(key)
        if group is None:
            raise not_found(key)
        if not tail:
            return self._group_item(group)
        relation = tail[0].lower()
        if relation == "members" and tail[1:] == ["$ref"]:
            self.method("POST")
            return self._add_member(group)
        if relation == "members" and len(tail) == 3 and tail[2] == "$ref":
            self.method("DELETE")
            return self._remove_member(group, tail[1].lower())
        if relation in ("members", "transitivemembers") and len(tail) <= 2:
            self.method("GET")
            self.require(READ_GROUPS)
            ids = (
                self.directory.visible_members(group["id"])
                if relation == "members"
                else self.directory.transitive_members(group["id"])
            )
            return self._directory_object_list(ids, tail[1:])
        raise segment_not_found(tail[0])

    def _list_groups(self) -> Response:
        self.require(READ_GROUPS)
        self.no_query_options(*LIST_OPTIONS)
        select = parse_select(self.call.query, GROUP_CATALOG)
        predicate = ODataFilter.parse(self.call, GROUP_CATALOG, "Group")
        rows = [(gid, g) for gid, g in self.directory.groups.items() if predicate(g)]
        return Pager(self, rows, f"groups{select_suffix(select)}").answer(
            lambda group: render_props(group, select or GROUP_DEFAULT_SELECT)
        )

    def _group_item(self, group: Mapping[str, Any]) -> Response:
        method = self.method("GET", "PATCH", "DELETE")
        if method == "GET":
            self.require(READ_GROUPS)
            self.no_query_options("$select")
            select = parse_select(self.call.query, GROUP_CATALOG)
            body = {"@odata.context": self.context(f"groups{select_suffix(select)}/$entity")}
            body.update(render_props(group, select or GROUP_DEFAULT_SELECT))
            return Response(200, body)
        self.require(WRITE_GROUPS)
        if method == "PATCH":
            body, binds = self._member_binds(self.write_body("Group"), group["id"])
            self.directory.update_group(group["id"], self._group_changes(body))
            for member_id in binds:
                self.directory.add_member(group["id"], member_id)
        else:
            self.directory.delete_group(group["id"])
        return Response(204)

    def _create_group(self) -> Response:
        self.require(WRITE_GROUPS)
        body, binds = self._member_binds(self.write_body("Group"), None)
        for name in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
            if body.get(name) in (None, ""):
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property '{name}' of resource 'Group'.",
                )
        changes = self._group_changes(body)
        group = group_defaults({"id": str(uuid.uuid4()), **changes}, changes["displayName"])
        group["createdDateTime"] = iso(self.service.now())
        self.directory.add_group(group, [])
        for member_id in binds:  # logged one by one, so delta rounds see the new members
            self.directory.add_member(group["id"], member_id)
        answer = {"@odata.context": self.context("groups/$entity")}
        answer.update(render_props(group, GROUP_DEFAULT_SELECT))
        return Response(201, answer)

    def _member_binds(
        self, body: dict[str, Any], group_id: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        """The body without `members@odata.bind`, and the member ids that list binds (checked:
        existing, not already members, at most 20, as Graph allows in one request)."""
        raw = body.pop("members@odata.bind", None)
        if raw is None:
            return body, []
        if not isinstance(raw, list) or not all(isinstance(url, str) for url in raw):
            raise GraphError(
                400, "BadRequest", "'members@odata.bind' must be a list of directoryObject URLs."
            )
        if len(raw) > MAX_MEMBER_BINDS:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"The request adds more than {MAX_MEMBER_BINDS} members in one request.",
            )
        members = [reference_id({"@odata.id": url}) for url in raw]
        current = self.directory.members.get(group_id, {}) if group_id else {}
        for member_id in members:
            if self.directory.kind_of(member_id) is None:
                raise not_found(member_id)
            if member_id == group_id or member_id in current or members.count(member_id) > 1:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "One or more added object references already exist for the following "
                    "modified properties: 'members'.",
                )
        return body, members

    def _group_changes(self, body: Mapping[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in body.items():
            canonical = GROUP_CATALOG.get(name.lower())
            if canonical is None:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{name}' does not exist as a declared property or extension "
                    "property.",
                )
            if canonical in GROUP_READ_ONLY:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{canonical}' is read-only and cannot be set.",
                )
            changes[canonical] = value
        return changes

    def _add_member(self, group: Mapping[str, Any]) -> Response:
        self.require(WRITE_MEMBERS)
        member_id = reference_id(self.body_object())
        if self.directory.kind_of(member_id) is None:
            raise not_found(member_id)
        if member_id == group["id"] or member_id in self.directory.members[group["id"]]:
            raise GraphError(
                400,
                "Request_BadRequest",
                "One or more added object references already exist for the following modified "
                "properties: 'members'.",
            )
        self.directory.add_member(group["id"], member_id)
        return Response(204)

    def _remove_member(self, group: Mapping[str, Any], member_id: str) -> Response:
        self.require(WRITE_MEMBERS)
        if member_id not in self.directory.members[group["id"]] or not self.directory.kind_of(
            member_id
        ):
            raise not_found(member_id)
        self.directory.remove_member(group["id"], member_id)
        return Response(204)

    # -- directory objects (members, memberOf, directoryObjects/{id}) -------------------------

    def _directory_objects(self, rest: list[str]) -> Response:
        self.method("GET")
        self.require(READ_DIRECTORY_OBJECTS)
        if len(rest) != 1:
            raise segment_not_found(rest[1] if rest else "directoryObjects")
        object_id = rest[0].lower()
        if self.directory.kind_of(object_id) is None:
            raise not_found(rest[0])
        select = parse_select(self.call.query, DIRECTORY_OBJECT_CATALOG)
        body = {"@odata.context": self.context("directoryObjects/$entity")}
        body.update(self.render_object(object_id, select))
        return Response(200, body)
