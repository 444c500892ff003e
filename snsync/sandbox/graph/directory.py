"""The tenant's state: app registrations, users, groups, memberships, assignments and the change
log that delta rounds read; one re-entrant lock guards it all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from snsync.sandbox.graph.catalog import GUID_RE
from snsync.sandbox.graph.wire import iso


@dataclass(frozen=True)
class Client:
    """An app registration that may ask the token service for Graph tokens."""

    client_id: str
    display_name: str
    secret: str | None
    secret_expires_at: float | None
    certificate: x509.Certificate | None
    permissions: frozenset[str]


@dataclass(frozen=True)
class Change:
    """One write to the directory, in sequence order; delta rounds read these."""

    seq: int
    kind: str  # "user" | "group"
    object_id: str
    member_id: str | None = None  # set for a group membership change
    old_manager: str | None = None  # set when a user's manager was removed


@dataclass(frozen=True)
class Principal:
    """Who a valid Graph access token speaks for."""

    client_id: str
    roles: frozenset[str]


class Directory:
    """Users, groups, memberships, assignments and the change log; guarded by `lock`."""

    def __init__(
        self,
        tenant_id: str,
        tenant_name: str,
        domains: frozenset[str],
        clients: dict[str, Client],
        service_principal: dict[str, Any],
        clock: Callable[[], float],
    ) -> None:
        self.lock = threading.RLock()
        self.tenant_id = tenant_id
        self.tenant_name = tenant_name
        self.domains = domains
        self.clients = clients
        self.service_principal = service_principal
        self.clock = clock
        self.users: dict[str, dict[str, Any]] = {}
        self.managers: dict[str, str] = {}
        self.soft_deleted: set[str] = set()
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, None]] = {}  # group id -> ordered set of member ids
        self.assignments: dict[str, dict[str, Any]] = {}
        self.changes: list[Change] = []
        self._upns: dict[str, str] = {}
        self._user_ids: list[str] | None = None  # every user id in order, made when asked

    @property
    def seq(self) -> int:
        """The sequence number of the latest change (0 before any)."""
        return len(self.changes)

    def user(self, key: str) -> dict[str, Any] | None:
        """A visible (not soft-deleted) user by id or userPrincipalName."""
        user_id = key.lower() if GUID_RE.match(key) else self._upns.get(key.lower(), "")
        if user_id in self.soft_deleted:
            return None
        return self.users.get(user_id)

    def user_ids(self) -> list[str]:
        """Every user's id (soft-deleted ones too) in sort order; kept until a user is added or
        purged, so that paging a large directory does not sort it for every page."""
        if self._user_ids is None:
            self._user_ids = sorted(self.users)
        return self._user_ids

    def group(self, group_id: str) -> dict[str, Any] | None:
        """A group by id."""
        return self.groups.get(group_id.lower())

    def kind_of(self, object_id: str) -> str | None:
        """'user' or 'group' for a visible directory object, else None."""
        object_id = object_id.lower()
        if object_id in self.users and object_id not in self.soft_deleted:
            return "user"
        return "group" if object_id in self.groups else None

    def visible_members(self, group_id: str) -> list[str]:
        """Direct members of a group, soft-deleted users hidden."""
        return [m for m in self.members.get(group_id, {}) if self.kind_of(m)]

    def transitive_members(self, group_id: str) -> list[str]:
        """Every member reached through nested groups (nested groups included), each once."""
        seen: dict[str, None] = {}
        pending = [group_id]
        while pending:
            for member in self.visible_members(pending.pop()):
                if member not in seen and member != group_id:
                    seen[member] = None
                    if member in self.groups:
                        pending.append(member)
        return list(seen)

    def member_of(self, object_id: str) -> list[str]:
        """Groups that list the object as a direct member."""
        return [gid for gid, members in self.members.items() if object_id in members]

    def transitive_member_of(self, object_id: str) -> list[str]:
        """Every group the object belongs to, directly or through nesting."""
        seen: dict[str, None] = {}
        pending = [object_id]
        while pending:
            for gid in self.member_of(pending.pop()):
                if gid not in seen:
                    seen[gid] = None
                    pending.append(gid)
        return list(seen)

    def record(
        self, kind: str, object_id: str, member: str | None = None, old_manager: str | None = None
    ) -> None:
        """Append a change for the delta log."""
        self.changes.append(Change(self.seq + 1, kind, object_id, member, old_manager))

    def changes_between(self, after: int, upto: int) -> list[Change]:
        """Changes with after < seq <= upto (seq n lives at index n-1)."""
        return self.changes[after:upto]

    def add_user(self, user: dict[str, Any], manager: str | None) -> None:
        """Create a user (already validated) and log it."""
        self.users[user["id"]] = user
        self._user_ids = None
        self._upns[user["userPrincipalName"].lower()] = user["id"]
        if manager:
            self.managers[user["id"]] = manager
        self.record("user", user["id"])

    def upn_owner(self, upn: str) -> str | None:
        """The id of the user (soft-deleted included) holding a userPrincipalName."""
        return self._upns.get(upn.lower())

    def update_user(self, user_id: str, changes: Mapping[str, Any]) -> None:
        """Apply property changes to a user; logs a change only when something differs."""
        user = self.users[user_id]
        updated = {**user, **changes}
        if updated == user:
            return
        if updated["userPrincipalName"] != user["userPrincipalName"]:
            del self._upns[user["userPrincipalName"].lower()]
            self._upns[updated["userPrincipalName"].lower()] = user_id
        self.users[user_id] = updated  # replaced, never mutated: readers may hold the old dict
        self.record("user", user_id)

    def set_manager(self, user_id: str, manager_id: str | None) -> None:
        """Set or clear a user's manager and log it."""
        old = self.managers.get(user_id)
        if old == manager_id:
            return
        if manager_id:
            self.managers[user_id] = manager_id
        else:
            self.managers.pop(user_id, None)
        self.record("user", user_id, old_manager=old if manager_id is None else None)

    def soft_delete_user(self, user_id: str) -> None:
        """Soft delete: hidden from reads, memberships and assignments; delta says 'changed'."""
        self.soft_deleted.add(user_id)
        self.users[user_id] = {**self.users[user_id], "deletedDateTime": iso(self.clock())}
        self.record("user", user_id)
        for group_id in self.member_of(user_id):
            self.record("group", group_id, member=user_id)

    def hard_delete_user(self, user_id: str) -> None:
        """Purge a user: memberships, assignments and manager links go too."""
        user = self.users.pop(user_id)
        self._user_ids = None
        self.soft_deleted.discard(user_id)
        self._upns.pop(user["userPrincipalName"].lower(), None)
        self.managers.pop(user_id, None)
        self.record("user", user_id)
        self._drop_principal(user_id)
        for report, manager in list(self.managers.items()):
            if manager == user_id:
                self.set_manager(report, None)

    def add_group(self, group: dict[str, Any], members: Iterable[str]) -> None:
        """Create a group (already validated) and log it."""
        self.groups[group["id"]] = group
        self.members[group["id"]] = dict.fromkeys(members)
        self.record("group", group["id"])

    def update_group(self, group_id: str, changes: Mapping[str, Any]) -> None:
        """Apply property changes to a group; logs a change only when something differs."""
        group = self.groups[group_id]
        updated = {**group, **changes}
        if updated != group:
            self.groups[group_id] = updated
            self.record("group", group_id)

    def delete_group(self, group_id: str) -> None:
        """Delete a security group (immediately permanent, as in Azure AD)."""
        del self.groups[group_id]
        del self.members[group_id]
        self.record("group", group_id)
        self._drop_principal(group_id)

    def add_member(self, group_id: str, member_id: str) -> None:
        """Add a direct member and log it."""
        self.members[group_id][member_id] = None
        self.record("group", group_id, member=member_id)

    def remove_member(self, group_id: str, member_id: str) -> None:
        """Remove a direct member and log it."""
        del self.members[group_id][member_id]
        self.record("group", group_id, member=member_id)

    def visible_assignments(self) -> list[dict[str, Any]]:
        """Assignments whose principal is visible (soft-deleted users' assignments disappear)."""
        return [a for a in self.assignments.values() if self.kind_of(a["principalId"])]

    def _drop_principal(self, object_id: str) -> None:
        for group_id in self.member_of(object_id):
            self.remove_member(group_id, object_id)
        for assignment_id, assignment in list(self.assignments.items()):
            if assignment["principalId"] == object_id:
                del self.assignments[assignment_id]
