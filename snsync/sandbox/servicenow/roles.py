"""Roles as an instance keeps them: `sys_user_role` rows, direct grants to users
(`sys_user_has_role`), grants to groups (`sys_group_has_role`), and the rows a group member
inherits (`inherited=true`, `granted_by` the group), kept in step when memberships change."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from snsync.sandbox.servicenow.schema import TableSpec
from snsync.sandbox.servicenow.values import new_sys_id

Rows = dict[str, dict[str, dict[str, str]]]
USER_ROLE = "sys_user_has_role"
GROUP_ROLE = "sys_group_has_role"
MEMBER = "sys_user_grmember"


@dataclass(frozen=True)
class Stamp:
    """Who made generated rows, and when."""

    user_name: str
    now: str


def grant_fixture_roles(
    specs: Mapping[str, TableSpec],
    rows: Rows,
    user_roles: Mapping[str, Iterable[str]],
    group_roles: Mapping[str, Iterable[str]],
    stamp: Stamp,
) -> None:
    """Give users (by sys_id) and groups (by sys_id) the named roles, as rows, creating the
    `sys_user_role` rows that do not exist yet; then the rows group members inherit."""
    for user, names in user_roles.items():
        for name in names:
            role = _role(specs, rows, name, stamp)
            if not _has(rows[USER_ROLE], user=user, role=role, granted_by=""):
                _add(specs, rows, USER_ROLE, {"user": user, "role": role}, stamp)
    for group, names in group_roles.items():
        for name in names:
            role = _role(specs, rows, name, stamp)
            if not _has(rows[GROUP_ROLE], group=group, role=role):
                _add(specs, rows, GROUP_ROLE, {"group": group, "role": role}, stamp)
    for member in list(rows[MEMBER].values()):
        inherit(specs, rows, member, stamp, lambda table, record: None)
    _name_group_roles(rows)


def inherit(
    specs: Mapping[str, TableSpec],
    rows: Rows,
    member: Mapping[str, str],
    stamp: Stamp,
    added: Callable[[str, dict[str, str]], None],
) -> None:
    """The role rows a new member of a group gets from the group's roles."""
    user, group = member.get("user", ""), member.get("group", "")
    if not user or not group:
        return
    for grant in list(rows[GROUP_ROLE].values()):
        if grant.get("group") != group or not grant.get("role"):
            continue
        wanted = {"user": user, "role": grant["role"], "granted_by": group}
        if not _has(rows[USER_ROLE], **wanted):
            added(USER_ROLE, _add(specs, rows, USER_ROLE, {**wanted, "inherited": "true"}, stamp))


def inherited_rows(rows: Rows, member: Mapping[str, str]) -> list[str]:
    """The sys_ids of role rows a member holds through this group and no other membership."""
    user, group = member.get("user", ""), member.get("group", "")
    still = any(
        m["sys_id"] != member.get("sys_id") and m.get("user") == user and m.get("group") == group
        for m in rows[MEMBER].values()
    )
    if still or not user or not group:
        return []
    return [
        r["sys_id"]
        for r in rows[USER_ROLE].values()
        if r.get("user") == user and r.get("granted_by") == group and r.get("inherited") == "true"
    ]


def _role(specs: Mapping[str, TableSpec], rows: Rows, name: str, stamp: Stamp) -> str:
    wanted = name.strip().lower()
    for sys_id, record in rows["sys_user_role"].items():
        if record.get("name", "").lower() == wanted:
            return sys_id
    return _add(specs, rows, "sys_user_role", {"name": name.strip()}, stamp)["sys_id"]


def _has(table: Mapping[str, Mapping[str, str]], **values: str) -> bool:
    return any(all(r.get(k, "") == v for k, v in values.items()) for r in table.values())


def _add(
    specs: Mapping[str, TableSpec], rows: Rows, table: str, values: dict[str, str], stamp: Stamp
) -> dict[str, str]:
    record = {column.name: column.default for column in specs[table].fields}
    record.update(values)
    record["sys_id"] = new_sys_id()
    for name in ("created", "updated"):
        record[f"sys_{name}_on"], record[f"sys_{name}_by"] = stamp.now, stamp.user_name
    rows[table][record["sys_id"]] = record
    return record


def _name_group_roles(rows: Rows) -> None:
    # sys_user_group.roles lists the group's role names, as the platform shows them.
    names = {sys_id: r.get("name", "") for sys_id, r in rows["sys_user_role"].items()}
    for group in rows["sys_user_group"].values():
        held = [
            names.get(g["role"], "")
            for g in rows[GROUP_ROLE].values()
            if g.get("group") == group["sys_id"]
        ]
        group["roles"] = ",".join(sorted({n for n in held if n}))
