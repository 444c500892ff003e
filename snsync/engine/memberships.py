"""Group memberships (sys_user_grmember) as a pure plan: add the rows the directory wants, adopt
rows that already exist, and remove only rows snsync created or adopted itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from snsync.model import MEMBER_TABLE, Action, Change, ObjectType, Plan, PlanItem, Record

MEMBERSHIP_TABLE = MEMBER_TABLE


@dataclass(frozen=True)
class MembershipPlan:
    """Rows to add or remove, and existing rows to adopt (linked without a write)."""

    plan: Plan
    adopted: Mapping[str, str]  # pair key -> row sys_id
    forgotten: tuple[str, ...]  # pair keys whose row was removed by hand: drop the link


def pair_key(group_id: str, user_id: str) -> str:
    """The link key of one membership: group and user directory ids."""
    return f"{group_id}:{user_id}"


def plan_memberships(
    wanted: Mapping[str, Iterable[str]],
    group_links: Mapping[str, str],
    user_links: Mapping[str, str],
    rows: Iterable[Record],
    owned: Mapping[str, str],
    names: Mapping[str, str],
) -> MembershipPlan:
    """Plan memberships of the groups in `wanted` (in-scope group id -> member user ids).

    Only users with a ServiceNow account from snsync become members. Rows of groups that are not
    in `wanted` (out of scope, disabled) are left as they are. `rows` are the membership rows of
    the wanted groups; `owned` are the pair keys snsync created or adopted before.
    """
    by_pair: dict[tuple[str, str], str] = {}
    for record in rows:
        by_pair.setdefault((record.get("group", ""), record.get("user", "")), record["sys_id"])
    items: list[PlanItem] = []
    adopted: dict[str, str] = {}
    wanted_keys: set[str] = set()
    unchanged = 0
    for group_id in sorted(wanted):
        group_sys = group_links.get(group_id)
        if not group_sys:
            continue
        for user_id in sorted(set(wanted[group_id])):
            user_sys = user_links.get(user_id)
            if not user_sys:
                continue
            key = pair_key(group_id, user_id)
            wanted_keys.add(key)
            row = by_pair.get((group_sys, user_sys))
            if row is None:
                items.append(_add(key, group_id, user_id, group_sys, user_sys, names))
            elif owned.get(key) != row:
                adopted[key] = row
            else:
                unchanged += 1
    forgotten: list[str] = []
    existing = set(by_pair.values())
    for key, row in sorted(owned.items()):
        group_id, user_id = key.split(":", 1)
        if group_id not in wanted or key in wanted_keys:
            continue
        if row in existing:
            items.append(_remove(key, group_id, user_id, row, names))
        else:
            forgotten.append(key)
    return MembershipPlan(Plan(tuple(items), unchanged), adopted, tuple(forgotten))


def _label(names: Mapping[str, str], group_id: str, user_id: str) -> str:
    return f"{names.get(group_id, group_id)} / {names.get(user_id, user_id)}"


def _add(
    key: str, group_id: str, user_id: str, group_sys: str, user_sys: str, names: Mapping[str, str]
) -> PlanItem:
    changes = (
        Change("group", None, group_sys, names.get(group_id)),
        Change("user", None, user_sys, names.get(user_id)),
    )
    return PlanItem(
        Action.CREATE,
        key,
        _label(names, group_id, user_id),
        None,
        changes,
        message="member in the directory",
        object_type=ObjectType.MEMBERSHIP,
    )


def _remove(key: str, group_id: str, user_id: str, row: str, names: Mapping[str, str]) -> PlanItem:
    return PlanItem(
        Action.DELETE,
        key,
        _label(names, group_id, user_id),
        row,
        message="no longer a member in the directory; the row was added by snsync",
        object_type=ObjectType.MEMBERSHIP,
    )
