"""users/delta and groups/delta over the directory's change log."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snsync.sandbox.graph.catalog import (
    GROUP_DEFAULT_SELECT,
    GROUP_DELTA_CATALOG,
    GROUP_TYPE,
    USER_DEFAULT_SELECT,
    USER_DELTA_CATALOG,
    USER_TYPE,
)
from snsync.sandbox.graph.paging import paging_link, parse_select, render_props, select_suffix
from snsync.sandbox.graph.wire import GraphError
from snsync.sandbox.server import Response

if TYPE_CHECKING:
    from snsync.sandbox.graph.routing import RouteBase

# Graph's own words (Microsoft 365 developer blog, July 2020).
SYNC_STATE_NOT_FOUND = (
    "The sync state generation is not found. The delta token is expired and data must be "
    "synchronized again."
)
_REMOVED = {"reason": "deleted"}


@dataclass(frozen=True)
class _Item:
    """One item of a delta page: an object, or one slice of a large group's members."""

    object_id: str
    members: list[dict[str, Any]] | None = None  # None: no members@delta on this item

    @property
    def weight(self) -> int:
        return 1 + len(self.members or [])


class Delta:
    """users/delta and groups/delta over the directory's change log.

    A round starts with every object (initial) or the objects changed since a delta token's
    sequence number, frozen at the sequence number current when the round began. Pages are
    keyed by object id (and, inside a large group, by member id), at the service's own page
    size; the last page's deltaLink carries the sequence number forward.
    """

    def __init__(self, routes: RouteBase, kind: str) -> None:
        self.routes = routes
        self.service = routes.service
        self.options = routes.service.options
        self.directory = routes.directory
        self.kind = kind

    def answer(self) -> Response:
        state = self._state()
        page, cursor = self._page(state)
        body: dict[str, Any] = {
            "@odata.context": self.routes.context(f"{self.kind}{select_suffix(state['s'])}")
        }
        if cursor is not None:
            token = self.service.seal({**state, "a": cursor[0], "m": cursor[1]})
            body["@odata.nextLink"] = paging_link(
                self.routes.call, {"$skiptoken": token}, keep=False
            )
        else:
            token = self.service.seal(
                {"k": self.kind, "s": state["s"], "q": state["t"], "i": self.service.now()}
                | {"g": self.service.generation}
            )
            body["@odata.deltaLink"] = paging_link(
                self.routes.call, {"$deltatoken": token}, keep=False
            )
        body["value"] = [self._render(item, state) for item in page]
        return Response(200, body)

    def _state(self) -> dict[str, Any]:
        query = self.routes.call.query
        catalog = USER_DELTA_CATALOG if self.kind == "users" else GROUP_DELTA_CATALOG
        if query.get("$deltatoken") == "latest":
            # Graph's "latest" token: no initial round, just a deltaLink for changes from now.
            self.routes.no_query_options("$select", "$deltatoken")
            return self._new_state(parse_select(query, catalog), self.directory.seq)
        for name in ("$deltatoken", "$skiptoken"):
            if name in query:
                state = self.service.open_token(query[name], name)
                if state.get("k") != self.kind:
                    raise GraphError(400, "Request_BadRequest", f"Invalid {name} value.")
                self._check_fresh(state)
                if name == "$deltatoken":  # a new round: changes after the token's sequence
                    return {**state, "f": state["q"], "t": self.directory.seq, "a": "", "m": None}
                return state
        # $top is accepted and ignored, as Graph does on directory delta: it picks the page size.
        self.routes.no_query_options("$select", "$top", "$deltatoken", "$skiptoken")
        return self._new_state(parse_select(query, catalog), None)

    def _new_state(self, select: list[str] | None, start: int | None) -> dict[str, Any]:
        return {
            "k": self.kind,
            "s": select,
            "f": start,
            "t": self.directory.seq,
            "a": "",
            "m": None,
            "i": self.service.now(),
            "g": self.service.generation,
        }

    def _check_fresh(self, state: Mapping[str, Any]) -> None:
        expired = self.service.now() - float(state.get("i", 0)) > self.options.delta_token_ttl_s
        if not expired and state.get("g") == self.service.generation:
            return
        status = self.options.delta_expired_status
        headers = {}
        if status == 410:  # the other answer Graph gives: Gone, with where to start again
            restart = {"$select": ",".join(state["s"])} if state.get("s") else {}
            headers["Location"] = paging_link(self.routes.call, restart, keep=False).rstrip("?")
        raise GraphError(status, "syncStateNotFound", SYNC_STATE_NOT_FOUND, headers)

    # -- paging -------------------------------------------------------------------------------

    def _page(self, state: Mapping[str, Any]) -> tuple[list[_Item], tuple[str, str | None] | None]:
        """This page's items and the cursor after them (None when the round is complete)."""
        budget = self.options.delta_page_size
        page: list[_Item] = []
        weight = 0
        for object_id in self._ids(state):
            resume = state["m"] if object_id == state["a"] else None
            for item in self._items(object_id, state, resume):
                if page and weight + item.weight > budget:
                    last = page[-1]
                    partial = last.object_id == item.object_id and last.members
                    member = last.members[-1]["id"] if partial and last.members else None
                    return page, (last.object_id, member)
                page.append(item)
                weight += item.weight
        return page, None

    def _ids(self, state: Mapping[str, Any]) -> Iterable[str]:
        after, resuming = state["a"], state["m"] is not None
        hidden = self.directory.soft_deleted
        if state["f"] is None and self.kind == "users":  # in order already: start at the cursor
            ordered = self.directory.user_ids()
            start = (bisect.bisect_left if resuming else bisect.bisect_right)(ordered, after)
            return (ordered[i] for i in range(start, len(ordered)) if ordered[i] not in hidden)
        if state["f"] is None:
            ids = [i for i in self.directory.groups if i not in hidden]
        else:
            kind = "user" if self.kind == "users" else "group"
            changes = self.directory.changes_between(int(state["f"]), int(state["t"]))
            ids = list(dict.fromkeys(c.object_id for c in changes if c.kind == kind))
        return sorted(i for i in ids if i > after or (resuming and i == after))

    def _items(self, object_id: str, state: Mapping[str, Any], resume: str | None) -> list[_Item]:
        select = state["s"] or GROUP_DEFAULT_SELECT
        if (
            self.kind == "users"
            or "members" not in select
            or object_id not in self.directory.groups
        ):
            return [_Item(object_id)]
        members = [
            m for m in self._member_delta(object_id, state) if resume is None or m["id"] > resume
        ]
        if not members:
            return [] if resume is not None else [_Item(object_id)]
        size = self.options.delta_member_chunk
        return [_Item(object_id, members[i : i + size]) for i in range(0, len(members), size)]

    # -- rendering ----------------------------------------------------------------------------

    def _render(self, item: _Item, state: Mapping[str, Any]) -> dict[str, Any]:
        if self.kind == "users":
            return self._render_user(item.object_id, state)
        return self._render_group(item, state)

    def _render_user(self, user_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        user = self.directory.users.get(user_id)
        if user is None:
            return {"id": user_id, "@removed": dict(_REMOVED)}
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
        return [{"@odata.type": USER_TYPE, "id": removed[-1], "@removed": dict(_REMOVED)}]

    def _render_group(self, item: _Item, state: Mapping[str, Any]) -> dict[str, Any]:
        group = self.directory.groups.get(item.object_id)
        if group is None:
            return {"id": item.object_id, "@removed": dict(_REMOVED)}
        select = state["s"] or GROUP_DEFAULT_SELECT
        out = {"id": item.object_id, **render_props(group, [n for n in select if n != "members"])}
        if item.members is not None:
            out["members@delta"] = item.members
        return out

    def _member_delta(self, group_id: str, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Members touched in this round, by member id: current ones plain, others @removed.
        The first round lists every current member, and members removed before it as @removed
        (Graph may send those even in an initial round)."""
        current = self.directory.members.get(group_id, {})
        changes = self.directory.changes_between(int(state["f"] or 0), int(state["t"]))
        touched = {c.member_id for c in changes if c.object_id == group_id and c.member_id}
        if state["f"] is None:
            touched |= set(current)
        out: list[dict[str, Any]] = []
        for member in sorted(touched):
            odata_type = GROUP_TYPE if member in self.directory.groups else USER_TYPE
            entry: dict[str, Any] = {"@odata.type": odata_type, "id": member}
            if not (self.directory.kind_of(member) and member in current):
                entry["@removed"] = dict(_REMOVED)
            out.append(entry)
        return out
