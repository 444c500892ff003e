"""Incremental reads from Graph: delta links taken before a full read, and the delta rounds that
bring the cached directory up to date (users, groups, direct memberships)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from snsync import background
from snsync.graph.client import GraphClient
from snsync.model import DeltaLinks

USER_TYPE = "#microsoft.graph.user"


def user_delta_select(select: Sequence[str], with_manager: bool) -> str:
    """The users/delta `$select`: the listing's attributes, and `manager` for manager@delta."""
    return ",".join([*select, "manager"] if with_manager else select)


def group_delta_select(select: Iterable[str]) -> str:
    return ",".join(dict.fromkeys([*select, "members"]))


def latest_links(graph: GraphClient, user_select: str, group_select: str) -> DeltaLinks:
    """Delta links for changes from now on, without an initial round (`$deltatoken=latest`).
    Taken before a full read, so that changes made during the read are replayed, not lost;
    the two are asked for at once."""
    query = {"$deltatoken": "latest", "$select": group_select}
    groups = background.start(lambda: graph.delta("groups/delta", query), "snsync-graph-delta")
    users = graph.delta("users/delta", {"$deltatoken": "latest", "$select": user_select})
    return DeltaLinks(users.delta_link, background.result(groups, "taking delta links").delta_link)


def apply_user_changes(
    users: Mapping[str, dict[str, Any]], changes: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The cached users with a delta round applied (pure). Changed properties are merged (Graph
    may send only those); `@removed` (soft- or hard-deleted) drops the user, as a listing would."""
    result = dict(users)
    for change in changes:
        user_id = str(change.get("id"))
        if "@removed" in change:
            result.pop(user_id, None)
            continue
        merged = dict(result.get(user_id, {}))
        merged.update({k: v for k, v in change.items() if not k.endswith("@delta")})
        if "manager@delta" in change:
            merged["manager"] = _manager(change["manager@delta"])
        result[user_id] = merged
    return result


def apply_group_changes(
    groups: Mapping[str, dict[str, Any]],
    members: Mapping[str, tuple[str, ...]],
    changes: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, ...]], bool]:
    """Cached groups and user members with a delta round applied (pure), for the groups already
    cached; also whether any membership changed anywhere (nested groups need a re-read)."""
    result_groups = dict(groups)
    result_members = dict(members)
    touched = False
    for change in changes:
        group_id = str(change.get("id"))
        if "@removed" in change:
            result_groups.pop(group_id, None)
            result_members.pop(group_id, None)
            continue
        if group_id in result_groups:
            merged = dict(result_groups[group_id])
            merged.update({k: v for k, v in change.items() if not k.endswith("@delta")})
            result_groups[group_id] = merged
        delta = change.get("members@delta")
        if delta:
            touched = True
            if group_id in result_members:
                result_members[group_id] = _apply_members(result_members[group_id], delta)
    return result_groups, result_members, touched


def _apply_members(current: Sequence[str], delta: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    members = dict.fromkeys(current)
    for entry in delta:
        member_id = str(entry.get("id"))
        if "@removed" in entry:
            members.pop(member_id, None)
        elif entry.get("@odata.type", USER_TYPE) == USER_TYPE:
            members[member_id] = None
    return tuple(members)


def _manager(delta: Any) -> dict[str, str] | None:
    current = [m for m in delta or [] if "@removed" not in m]
    return {"id": str(current[-1]["id"])} if current else None
