"""In-memory ports for cycle unit tests: a directory and a ServiceNow that live in dicts, and a
clock that only moves when told. The state is the real one (SQLite in a temporary folder): it has
tests of its own, and a fake of it would only test the fake."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snsync.config import Config
from snsync.engine.ports import Ports
from snsync.errors import ApiError
from snsync.graph.client import DeltaRound
from snsync.graph.opening import Opening
from snsync.model import (
    MEMBER_TABLE,
    USER_TABLE,
    AppScope,
    Assignment,
    DeltaLinks,
    Progress,
    Record,
)
from snsync.servicenow.batchread import Changed
from snsync.state import State

DEFAULT_ROLE = "00000000-0000-0000-0000-000000000000"
ACCOUNT = "snsync.integration"


@dataclass
class FakeDirectory:
    """The directory: users, groups and their user members, the app's assignments."""

    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    delta_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # link -> items
    reads: int = 0

    def add_user(self, uid: str, manager: str | None = None, **attributes: Any) -> None:
        self.people[uid] = {
            "id": uid,
            "userPrincipalName": f"{uid}@contoso.example",
            "displayName": uid.title(),
            "accountEnabled": True,
            "givenName": uid.title(),
            "manager": {"id": manager} if manager else None,
            **attributes,
        }

    def assign(self, principal_id: str, kind: str = "User") -> None:
        number = len(self.assignments)
        self.assignments.append(Assignment(f"a{number}", principal_id, kind, DEFAULT_ROLE))

    def add_group(self, gid: str, *members: str) -> None:
        self.teams[gid] = {"id": gid, "displayName": gid.title()}
        self.members[gid] = members
        self.assign(gid, "Group")

    def latest_delta_links(self, user_select: str, group_select: str) -> DeltaLinks:
        return DeltaLinks("users-1", "groups-1")

    def delta(self, link: str) -> DeltaRound:
        self.reads += 1
        kind, _, number = link.partition("-")
        return DeltaRound(self.delta_items.pop(link, []), f"{kind}-{int(number) + 1}")

    def opening(self, links: DeltaLinks, service_principal: str = "") -> Opening:
        return Opening(self.delta(links.users), self.delta(links.groups))

    def app_scope(
        self,
        progress: Progress | None = None,
        known_members: Mapping[str, tuple[str, ...]] | None = None,
        opening: Opening | None = None,
    ) -> AppScope:
        self.reads += 1
        groups = {a.principal_id for a in self.assignments if a.principal_type == "Group"}
        members = {g: self.members.get(g, ()) for g in groups}
        return AppScope("sp", "ServiceNow", {}, tuple(self.assignments), members)

    def users(
        self, attributes: set[str], progress: Progress | None, incomplete: list[str]
    ) -> list[dict[str, Any]]:
        self.reads += 1
        return [dict(u) for u in self.people.values()]

    def groups(
        self,
        ids: Iterable[str],
        attributes: set[str],
        incomplete: list[str],
        known: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        self.reads += 1
        return [dict(self.teams[g]) for g in ids if g in self.teams]

    def user(self, ref: str, attributes: set[str]) -> dict[str, Any]:
        return dict(self.people[ref])

    def group(self, group_id: str, attributes: set[str]) -> dict[str, Any]:
        return dict(self.teams[group_id])

    def groups_named(self, name: str, attributes: set[str]) -> list[dict[str, Any]]:
        return [dict(g) for g in self.teams.values() if g["displayName"].lower() == name.lower()]


@dataclass
class FakeServiceNow:
    """ServiceNow's tables in dicts; `refuse` makes creates of records with a value fail."""

    tables: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    refuse: set[tuple[str, str, str]] = field(default_factory=set)  # (table, field, value)
    writes: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    now: str = "2026-01-01 00:00:00"

    def insert(self, table: str, **values: str) -> str:
        sys_id = f"{next(self._ids):032x}"
        row = {"sys_id": sys_id, "sys_created_by": "admin", "sys_updated_by": "admin", **values}
        self.tables.setdefault(table, {})[sys_id] = {"sys_updated_on": self.now, **row}
        return sys_id

    def rows(self, table: str) -> list[dict[str, str]]:
        return list(self.tables.get(table, {}).values())

    def _read(self, table: str, fields: Sequence[str]) -> dict[str, Record]:
        keep = {"sys_id", *fields}
        return {
            s: {k: v for k, v in r.items() if k in keep}
            for s, r in self.tables.get(table, {}).items()
        }

    def users(self, fields: Sequence[str], progress: Progress | None = None) -> dict[str, Record]:
        return self._read(USER_TABLE, fields)

    def groups(self, fields: Sequence[str]) -> dict[str, Record]:
        return self._read("sys_user_group", fields)

    def memberships(self, group_sys_ids: Iterable[str]) -> list[Record]:
        wanted = set(group_sys_ids)
        rows = self._read(MEMBER_TABLE, ["user", "group", "sys_created_by"]).values()
        return [r for r in rows if r.get("group") in wanted]

    def references(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        return {
            t: {r["name"].lower(): r["sys_id"] for r in self.rows(t)}
            for t in set(tables) - {USER_TABLE}
        }

    def _changed_since(
        self, table: str, fields: Sequence[str], since: str, not_by: str | None
    ) -> Sequence[Record]:
        return [
            r
            for s, r in self._read(table, [*fields, "sys_updated_on", "sys_updated_by"]).items()
            if r.get("sys_updated_on", "") >= since and r.get("sys_updated_by") != not_by
        ]

    def _members_added_since(self, since: str, not_by: str) -> Sequence[Record]:
        return []

    def changes_since(self, reads: Sequence[Changed], since: str) -> list[list[Record]]:
        return [
            list(
                self._members_added_since(since, r.not_by or "")
                if r.added
                else self._changed_since(r.table, r.fields, since, r.not_by)
            )
            for r in reads
        ]

    def find(self, table: str, fields: Sequence[str], field: str, value: str) -> Sequence[Record]:
        return [r for r in self._read(table, [*fields, field]).values() if r.get(field) == value]

    def get(self, table: str, sys_id: str, fields: Sequence[str] = ()) -> Record:
        return self._read(table, fields)[sys_id]

    def role_holders(
        self, table: str, holder: str, role_names: Collection[str] | None = None
    ) -> dict[str, tuple[str, ...]]:
        return {}

    def create(self, table: str, values: Mapping[str, str]) -> Record:
        self.writes.append(("create", table, dict(values)))
        for refused_table, name, value in self.refuse:
            if table == refused_table and values.get(name) == value:
                raise ApiError(f"create in {table} refused", service="servicenow", status=403)
        sys_id = self.insert(table, **values)
        row = self.tables[table][sys_id]
        row.update(sys_created_by=ACCOUNT, sys_updated_by=ACCOUNT)
        return dict(row)

    def update(self, table: str, sys_id: str, values: Mapping[str, str]) -> Record:
        self.writes.append(("update", table, {"sys_id": sys_id, **values}))
        row = self.tables[table][sys_id]
        row.update(values, sys_updated_by=ACCOUNT)
        return dict(row)

    def delete(self, table: str, sys_id: str) -> None:
        self.writes.append(("delete", table, {"sys_id": sys_id}))
        del self.tables[table][sys_id]


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def fake_config(tmp_path: Path, **sections: Any) -> Config:
    """A valid config for the fakes (nothing in it is ever contacted)."""
    (tmp_path / "pw.txt").write_text("pw")
    data: dict[str, Any] = {
        "graph": {
            "tenant_id": "contoso.example",
            "client_id": "11111111-1111-1111-1111-111111111111",
            "client_secret": "not-used",
            "app_id": "22222222-2222-2222-2222-222222222222",
        },
        "servicenow": {
            "instance": "acme",
            "auth": {"type": "basic", "username": ACCOUNT, "password": "not-used"},
        },
        "state": {"path": str(tmp_path / "state.db")},
        **sections,
    }
    return Config.model_validate(data, context={"base": tmp_path})


def fake_ports(
    config: Config, directory: FakeDirectory, servicenow: FakeServiceNow, clock: FakeClock
) -> Ports:
    return Ports(
        directory,
        servicenow,
        State(config.state.path),
        clock,
        lambda: {"writes": len(servicenow.writes)},
        ACCOUNT,
    )
