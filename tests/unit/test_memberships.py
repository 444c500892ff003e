"""Membership planning (pure): add, adopt, remove only owned rows, freeze out-of-scope groups."""

from __future__ import annotations

from snsync.engine.memberships import pair_key, plan_memberships
from snsync.model import Action

GROUPS = {"g1": "G" * 32, "g2": "H" * 32}
USERS = {"u1": "a" * 32, "u2": "b" * 32, "u3": "c" * 32}
NAMES = {"g1": "Agents", "u1": "Ann", "u2": "Bob"}


def row(sys_id: str, group: str, user: str) -> dict[str, str]:
    return {"sys_id": sys_id, "group": GROUPS[group], "user": USERS[user]}


def test_missing_rows_are_added_existing_ones_adopted() -> None:
    plan = plan_memberships({"g1": ["u1", "u2"]}, GROUPS, USERS, [row("r1", "g1", "u1")], {}, NAMES)
    assert [(i.action, i.directory_id) for i in plan.plan.items] == [
        (Action.CREATE, pair_key("g1", "u2"))
    ]
    assert plan.adopted == {pair_key("g1", "u1"): "r1"}
    assert plan.plan.items[0].display_name == "Agents / Bob"


def test_only_owned_rows_are_removed() -> None:
    rows = [row("r1", "g1", "u1"), row("r2", "g1", "u2")]
    owned = {pair_key("g1", "u1"): "r1"}
    plan = plan_memberships({"g1": []}, GROUPS, USERS, rows, owned, NAMES)
    assert [(i.action, i.sys_id) for i in plan.plan.items] == [(Action.DELETE, "r1")]


def test_out_of_scope_group_memberships_are_frozen() -> None:
    owned = {pair_key("g2", "u1"): "r9"}
    plan = plan_memberships({"g1": []}, GROUPS, USERS, [row("r9", "g2", "u1")], owned, NAMES)
    assert plan.plan.items == ()


def test_unprovisioned_member_and_unlinked_group_are_ignored() -> None:
    plan = plan_memberships({"g1": ["nobody"], "g3": ["u1"]}, GROUPS, USERS, [], {}, NAMES)
    assert plan.plan.items == ()


def test_row_removed_by_hand_is_recreated_or_forgotten() -> None:
    owned = {pair_key("g1", "u1"): "gone1", pair_key("g1", "u2"): "gone2"}
    plan = plan_memberships({"g1": ["u1"]}, GROUPS, USERS, [], owned, NAMES)
    assert [i.action for i in plan.plan.items] == [Action.CREATE]
    assert plan.forgotten == (pair_key("g1", "u2"),)
