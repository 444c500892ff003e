"""Graph routes under /servicePrincipals: the app and its appRoleAssignedTo."""

from __future__ import annotations

import secrets

from snsync.sandbox.graph.catalog import (
    DEFAULT_ACCESS_ROLE_ID,
    READ_APPS,
    READ_ASSIGNMENTS,
    SP_CATALOG,
    WRITE_ASSIGNMENTS,
)
from snsync.sandbox.graph.fixture import make_assignment_id
from snsync.sandbox.graph.odata_filter import ODataFilter
from snsync.sandbox.graph.paging import (
    LIST_OPTIONS,
    Pager,
    parse_select,
    render_props,
    select_suffix,
)
from snsync.sandbox.graph.routing import RouteBase
from snsync.sandbox.graph.wire import GraphError, iso, not_found, segment_not_found
from snsync.sandbox.server import Response


class AppRoutes(RouteBase):
    """servicePrincipals, servicePrincipals(appId=...), appRoleAssignedTo."""

    def _service_principals(self, rest: list[str]) -> Response:
        self.require(READ_APPS if not rest[1:] else READ_ASSIGNMENTS)
        sp = self.directory.service_principal
        if not rest:
            self.method("GET")
            self.no_query_options(*LIST_OPTIONS)
            select = parse_select(self.call.query, SP_CATALOG)
            predicate = ODataFilter.parse(self.call, SP_CATALOG, "ServicePrincipal")
            rows = [(sp["id"], sp)] if predicate(sp) else []
            return Pager(self, rows, f"servicePrincipals{select_suffix(select)}").answer(
                lambda item: render_props(item, select or list(item))
            )
        if rest[0].lower() != sp["id"]:
            raise not_found(rest[0])
        if len(rest) == 1:
            self.method("GET")
            select = parse_select(self.call.query, SP_CATALOG)
            body = {
                "@odata.context": self.context(f"servicePrincipals{select_suffix(select)}/$entity")
            }
            body.update(render_props(sp, select or list(sp)))
            return Response(200, body)
        if rest[1].lower() != "approleassignedto" or len(rest) > 3:
            raise segment_not_found(rest[1])
        if len(rest) == 3:
            return self._assignment_item(rest[2])
        if self.method("GET", "POST") == "POST":
            return self._create_assignment()
        assignments = self.directory.visible_assignments()
        return self._assignment_list(
            assignments, f"servicePrincipals('{sp['id']}')/appRoleAssignedTo"
        )

    def _sp_by_app_id(self, app_id: str) -> str:
        sp = self.directory.service_principal
        if app_id.lower() != sp["appId"]:
            raise not_found(f"appId='{app_id}'")
        return str(sp["id"])

    def _assignment_item(self, assignment_id: str) -> Response:
        method = self.method("GET", "DELETE")
        assignment = self.directory.assignments.get(assignment_id)
        if assignment is None or not self.directory.kind_of(assignment["principalId"]):
            raise not_found(assignment_id)
        if method == "GET":
            body = {"@odata.context": self.context("appRoleAssignments/$entity")}
            body.update(self.render_assignment(assignment))
            return Response(200, body)
        self.require(WRITE_ASSIGNMENTS)
        del self.directory.assignments[assignment_id]
        return Response(204)

    def _create_assignment(self) -> Response:
        self.require(WRITE_ASSIGNMENTS)
        body = self.body_object()
        sp = self.directory.service_principal
        principal = str(body.get("principalId") or "").lower()
        role = str(body.get("appRoleId") or "").lower()
        if str(body.get("resourceId") or "").lower() != sp["id"]:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'resourceId' of resource "
                "'AppRoleAssignment'.",
            )
        if self.directory.kind_of(principal) is None:
            raise not_found(str(body.get("principalId")))
        if role != DEFAULT_ACCESS_ROLE_ID and role not in {r["id"] for r in sp["appRoles"]}:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Permission being assigned was not found on application '{sp['appId']}'.",
            )
        if any(
            a["principalId"] == principal and a["appRoleId"] == role
            for a in self.directory.assignments.values()
        ):
            raise GraphError(
                400, "Request_BadRequest", "Permission being assigned already exists on the object."
            )
        assignment = {
            "id": make_assignment_id(
                principal, role, salt=str(self.directory.seq) + secrets.token_hex(4)
            ),
            "principalId": principal,
            "appRoleId": role,
            "createdDateTime": iso(self.service.now()),
        }
        self.directory.assignments[assignment["id"]] = assignment
        answer = {"@odata.context": self.context("appRoleAssignments/$entity")}
        answer.update(self.render_assignment(assignment))
        return Response(201, answer)
