"""The directory side of the picture: decide every user's scope from the app's assignments and
the scoping filters, and synthesize the attributes Azure's provisioning schema offers that Graph
does not return as such (IsSoftDeleted, telephoneNumber, manager, objectId, appRoleAssignments).
Pure: the raw Graph objects come from graph/source.py."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from snsync.bounds import over_long_reason
from snsync.config import ScopeConfig
from snsync.engine.scope import build_index, counted_assignments, decide
from snsync.model import (
    AppScope,
    Row,
    ScopeDecision,
    SourceObject,
    SourceSnapshot,
    UserAttributes,
)

Raw = TypeVar("Raw", bound=Mapping[str, Any])  # a directory object: a Row or a dict


def assigned_groups(app: AppScope, scope: ScopeConfig) -> dict[str, str]:
    """Group id -> role value, for the groups whose assignment counts (role not excluded)."""
    kept, _ = counted_assignments(app.assignments, app.roles, scope)
    return {
        a.principal_id: app.roles.get(a.app_role_id, "Default Access")
        for a in kept
        if a.principal_type == "Group"
    }


def with_shared_ids(app: AppScope, users: Iterable[Mapping[str, Any]]) -> AppScope:
    """The app with each group member's id the same string object as that user's `id` (the
    members' listings parse their own copy of every id: about 85 bytes per membership)."""
    ids = {i: i for i in (raw.get("id") for raw in users) if isinstance(i, str)}
    members = {
        group: tuple(ids.get(m, m) for m in listed) for group, listed in app.group_members.items()
    }
    return replace(app, group_members=members)


def refuse_over_long(objects: Sequence[Raw], max_length: int) -> tuple[list[Raw], dict[str, str]]:
    """The objects with every over-long value dropped (so it is never mapped, printed or
    cached), and object id -> why it is refused (limits.max_attribute_length). The objects
    kept are the caller's own: a read-only Row as read (or without the values dropped), a
    dict copied."""
    kept: list[Raw] = []
    refused: dict[str, str] = {}
    for raw in objects:
        flat = with_extension_attributes(raw)
        why = over_long_reason(flat, max_length)
        if why is None:
            kept.append(raw if isinstance(raw, Row) else cast(Raw, dict(raw)))
            continue
        refused[str(raw.get("id"))] = why
        within = {k: v for k, v in raw.items() if not over_long_reason({k: v}, max_length)}
        kept.append(cast(Raw, Row.of(within) if isinstance(raw, Row) else within))
    return kept, refused


def build_snapshot(
    users: Sequence[Mapping[str, Any]],
    app: AppScope,
    scope: ScopeConfig,
    groups: Sequence[Mapping[str, Any]] = (),
    incomplete: Sequence[str] = (),
    whole_directory: bool = True,
    refused: Mapping[str, str] | None = None,
    present: Collection[str] | None = None,
) -> SourceSnapshot:
    """Decide scope and synthesize attributes for every user and assigned group read
    (`present`: the ids of every directory user, when `users` is only a part of them)."""
    result: dict[str, SourceObject] = {}
    index = build_index(app.assignments, app.group_members, app.roles, scope)
    if present is None:
        present = {str(raw.get("id")) for raw in users}
    role_lists: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per list of roles
    for raw in map(with_extension_attributes, users):
        decision = decide(raw, index, scope)
        manager = raw.get("manager")
        if (
            whole_directory
            and isinstance(manager, Mapping)
            and str(manager.get("id")) not in present
        ):
            # A deleted manager is no manager, whether the read was a listing or a delta round
            # (delta reports no change on the reports of a manager who was deleted).
            raw = {**raw, "manager": None}
        values = tuple(index.roles.get(str(raw.get("id")), ()))
        user = source_user(raw, decision, role_lists.setdefault(values, values))
        if refused and user.id in refused:
            user = replace(user, refused=refused[user.id])
        result[user.id] = user
    roles = assigned_groups(app, scope)
    source_groups = {str(g["id"]): source_group(g, roles.get(str(g["id"]), "")) for g in groups}
    for gid in set(source_groups) & set(refused or ()):
        source_groups[gid] = replace(source_groups[gid], refused=(refused or {})[gid])
    members = {gid: app.group_members.get(gid, ()) for gid in source_groups}
    return SourceSnapshot(
        users=result,
        assignments=len(app.assignments),
        groups_expanded=len(app.group_members),
        groups=source_groups,
        members=members,
        incomplete=(*app.incomplete, *incomplete),
    )


def with_extension_attributes(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The user with onPremisesExtensionAttributes' extensionAttribute1..15 at the top level, as
    the provisioning service's schema names them (for scoping filters and mappings alike)."""
    nested = raw.get("onPremisesExtensionAttributes")
    if not isinstance(nested, Mapping):
        return raw
    lifted = {f"extensionAttribute{n}": nested.get(f"extensionAttribute{n}") for n in range(1, 16)}
    return {**raw, **lifted}


def source_group(raw: Mapping[str, Any], role: str) -> SourceObject:
    """A SourceObject for an assigned group."""
    attributes = {**raw, "objectId": raw.get("id"), "IsSoftDeleted": False}
    name = str(raw.get("displayName") or raw.get("id"))
    return SourceObject(str(raw["id"]), name, attributes, True, f"assigned (role {role})")


def source_user(
    raw: Mapping[str, Any], decision: ScopeDecision, role_values: Sequence[str] = ()
) -> SourceObject:
    """A SourceObject from a Graph user object and its scope decision (the object itself is
    not copied: the synthesized attributes are computed from it when asked for)."""
    enabled = raw.get("accountEnabled") is not False
    attributes = UserAttributes(raw, not (decision.in_scope and enabled), tuple(role_values))
    reason = decision.reason if enabled else f"{decision.reason}; accountEnabled is false"
    name = str(raw.get("displayName") or raw.get("userPrincipalName") or raw.get("id"))
    return SourceObject(str(raw.get("id")), name, attributes, decision.in_scope, reason)
