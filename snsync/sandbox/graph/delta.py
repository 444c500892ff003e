"""users/delta and groups/delta over the directory's change log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from snsync.sandbox.graph.catalog import (
    GROUP_DEFAULT_SELECT,
    GROUP_DELTA_CATALOG,
    GROUP_TYPE,
    USER_DEFAULT_SELECT,
    USER_DELTA_CATALOG,
    USER_TYPE,
)
from snsync.sandbox.graph.paging import (
    paging_link,
    parse_select,
    parse_top,
    render_props,
    select_suffix,
)
from snsync.sandbox.graph.wire import GraphError
from snsync.sandbox.server import Response

if TYPE_CHECKING:
    from snsync.sandbox.graph.routing import RouteBase


class Delta:
    """users/delta and groups/delta over the directory's change log.

    A round starts with every object (initial) or the objects changed since a delta token's
    sequence number, frozen at the sequence number current when the round began; pages are
    keyed by object id; the last page's deltaLink carries that sequence number forward.
    """

    def __init__(self, routes: RouteBase, kind: str) -> None:
        self.routes = routes
        self.service = routes.service
        self.directory = routes.directory
        self.kind = kind

    def answer(self) -> Response:
        state = self._state()
        rows = self._rows(state)
        page = rows[: state["n"]]
        more = len(rows) > state["n"]
        body: dict[str, Any] = {
            "@odata.context": self.routes.context(f"{self.kind}{select_suffix(state['s'])}")
        }
        if more:
            token = self.service.seal({**state, "a": page[-1]})
            body["@odata.nextLink"] = paging_link(
                self.routes.call, {"$skiptoken": token}, keep=False
            )
        else:
            token = self.service.seal(
                {"k": self.kind, "s": state["s"], "q": state["t"], "i": self.service.now()}
                | {"g": self.service.generation, "n": state["n"]}
            )
            body["@odata.deltaLink"] = paging_link(
                self.routes.call, {"$deltatoken": token}, keep=False
            )
        body["value"] = [self._render(object_id, state) for object_id in page]
        return Response(200, body)

    def _state(self) -> dict[str, Any]:
        query = self.routes.call.query
        if query.get("$deltatoken") == "latest":
            # Graph's "latest" token: no initial round, just a deltaLink for changes from now.
            self.routes.no_query_options("$select", "$deltatoken")
            catalog = USER_DELTA_CATALOG if self.kind == "users" else GROUP_DELTA_CATALOG
            now = self.directory.seq
            return {
                "k": self.kind,
                "s": parse_select(query, catalog),
                "f": now,
                "t": now,
                "a": "",
                "i": self.service.now(),
                "g": self.service.generation,
                "n": 100,
            }
        for name in ("$deltatoken", "$skiptoken"):
            if name in query:
                state = self.service.open_token(query[name], name)
                if state.get("k") != self.kind:
                    raise GraphError(400, "Request_BadRequest", f"Invalid {name} value.")
                self._check_fresh(state)
                if name == "$deltatoken":  # a new round: changes after the token's sequence
                    return {**state, "f": state["q"], "t": self.directory.seq, "a": ""}
                return state
        self.routes.no_query_options("$select", "$top", "$deltatoken", "$skiptoken")
        catalog = USER_DELTA_CATALOG if self.kind == "users" else GROUP_DELTA_CATALOG
        select = parse_select(query, catalog)
        size = parse_top(query, self.routes.call.headers.get("prefer", ""))
        return {
            "k": self.kind,
            "s": select,
            "f": None,
            "t": self.directory.seq,
            "a": "",
            "i": self.service.now(),
            "g": self.service.generation,
            "n": size,
        }

    def _check_fresh(self, state: Mapping[str, Any]) -> None:
        expired = self.service.now() - float(state.get("i", 0)) > self.service.delta_ttl_s
        if expired or state.get("g") != self.service.generation:
            raise GraphError(
                410,
                "syncStateNotFound",
                "The sync state generation is not found. The delta token is expired or no "
                "longer valid; start a new delta round without a token.",
            )

    def _rows(self, state: Mapping[str, Any]) -> list[str]:
        after = state["a"]
        if state["f"] is None:
            source = self.directory.users if self.kind == "users" else self.directory.groups
            ids = [i for i in source if i not in self.directory.soft_deleted]
        else:
            kind = "user" if self.kind == "users" else "group"
            changes = self.directory.changes_between(int(state["f"]), int(state["t"]))
            ids = list(dict.fromkeys(c.object_id for c in changes if c.kind == kind))
        return sorted(i for i in ids if i > after)

    def _render(self, object_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        if self.kind == "users":
            return self._render_user(object_id, state)
        return self._render_group(object_id, state)

    def _render_user(self, user_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        user = self.directory.users.get(user_id)
        if user is None:
            return {"id": user_id, "@removed": {"reason": "deleted"}}
        if user_id in self.directory.soft_deleted:
            return {"id": user_id, "@removed": {"reason": "changed"}}
        select = state["s"] or USER_DEFAULT_SELECT
        names = [n for n in select if n != "manager"]
        out = {"id": user_id, **render_props(user, names)}
        if "manager" in select:
            delta = self._manager_delta(user_id, state)
            if delta is not None:
                out["manager@delta"] = delta
        return out

    def _manager_delta(self, user_id: str, state: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        manager = self.directory.managers.get(user_id)
        if manager and self.directory.kind_of(manager) == "user":
            return [{"@odata.type": USER_TYPE, "id": manager}]
        if state["f"] is None:
            return None
        changes = self.directory.changes_between(int(state["f"]), int(state["t"]))
        removed = [c.old_manager for c in changes if c.object_id == user_id and c.old_manager]
        if not removed:
            return None
        return [{"@odata.type": USER_TYPE, "id": removed[-1], "@removed": {"reason": "deleted"}}]

    def _render_group(self, group_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        group = self.directory.groups.get(group_id)
        if group is None:
            return {"id": group_id, "@removed": {"reason": "deleted"}}
        select = state["s"] or GROUP_DEFAULT_SELECT
        out = {"id": group_id, **render_props(group, [n for n in select if n != "members"])}
        if "members" in select:
            members = self._member_delta(group_id, state)
            if members or state["f"] is None:
                out["members@delta"] = members
        return out

    def _member_delta(self, group_id: str, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        current = self.directory.members.get(group_id, {})
        if state["f"] is None:
            touched = list(current)
        else:
            changes = self.directory.changes_between(int(state["f"]), int(state["t"]))
            touched = list(
                dict.fromkeys(
                    c.member_id for c in changes if c.object_id == group_id and c.member_id
                )
            )
        out: list[dict[str, Any]] = []
        for member in touched:
            kind = self.directory.kind_of(member)
            odata_type = GROUP_TYPE if member in self.directory.groups else USER_TYPE
            if kind and member in current:
                out.append({"@odata.type": odata_type, "id": member})
            elif state["f"] is not None:
                out.append(
                    {"@odata.type": odata_type, "id": member, "@removed": {"reason": "deleted"}}
                )
        return out
