"""Membership planning (pure): add, adopt, remove only owned rows, freeze out-of-scope groups."""

from __future__ import annotations

from snsync.engine.memberships import Waits, pair_key, plan_memberships
from snsync.model import Action, Change

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


def test_new_rows_name_the_placeholders_they_wait_for_and_share_their_changes() -> None:
    group_links = {**GROUPS, "g3": "(new group g3)"}
    user_links = {**USERS, "u4": "(new user u4)"}
    waits = Waits({"g3": "(new group g3)"}, {"u4": "(new user u4)", "u2": "(new user u2)"})
    wanted = {"g1": ["u1", "u4"], "g3": ["u1", "u2"]}
    plan = plan_memberships(wanted, group_links, user_links, [], {}, NAMES, waits=waits)
    items = {i.directory_id: i for i in plan.plan.items}
    assert set(items) == {pair_key(g, u) for g, us in wanted.items() for u in us}
    plain = items[pair_key("g1", "u1")]
    assert plain.pending == frozenset() and plain.changes == (
        Change("group", None, "G" * 32, "Agents"),
        Change("user", None, "a" * 32, "Ann"),
    )
    assert items[pair_key("g1", "u4")].pending == {"user"}
    # u2 is adopted this cycle: linked by its sys_id, but the row waits for its placeholder.
    adopted = items[pair_key("g3", "u2")]
    assert adopted.pending == {"group", "user"}
    assert [c.new for c in adopted.changes] == ["(new group g3)", "(new user u2)"]
    # Every new row of a group names it with the same Change object; so for a user.
    assert items[pair_key("g3", "u1")].changes[0] is adopted.changes[0]
    assert items[pair_key("g3", "u1")].changes[1] is plain.changes[1]
