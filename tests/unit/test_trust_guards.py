"""The target completeness guard (issue 9.7): a ServiceNow table that answers with too little
changes nothing the cycle cannot see."""

from __future__ import annotations

import pytest

from snsync.engine.guards import (
    TableRead,
    hold_for_incomplete_target,
    hold_memberships_for_incomplete_target,
    incomplete_target,
)
from snsync.engine.memberships import MembershipPlan, pair_key
from snsync.model import Action, Change, Plan, PlanItem, Reason, Status


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (TableRead("sys_user", 0, 14, 0), "sys_user came back empty"),
        (TableRead("sys_user", 0, 0, 0, never_empty=True), "sys_user came back empty"),
        (TableRead("sys_user_group", 3, 10, 4), "only 4 of the 10"),
    ],
)
def test_empty_or_short_tables_are_named(read: TableRead, expected: str) -> None:
    (note,) = incomplete_target([read], 0.5)
    assert expected in note and read.table in note and "roles" in note


@pytest.mark.parametrize(
    "read",
    [
        TableRead("sys_user", 5, 10, 5),
        TableRead("sys_user_group", 0, 0, 0),
        TableRead("sys_user_grmember", 7, 0, 0),
    ],
)
def test_complete_enough_tables_pass(read: TableRead) -> None:
    assert incomplete_target([read], 0.5) == ()


def test_share_is_configurable() -> None:
    read = TableRead("sys_user", 10, 10, 8)
    assert incomplete_target([read], 0.5) == ()
    assert incomplete_target([read], 0.9) != ()


def items() -> tuple[PlanItem, ...]:
    return (
        PlanItem(Action.DISABLE, "u1", "Ann", "a" * 32, (Change("active", "true", "false"),)),
        PlanItem(Action.CREATE, "u2", "Bob", None, (Change("user_name", None, "bob"),)),
        PlanItem(Action.CREATE, "u3", "New", None, (Change("user_name", None, "new"),)),
        PlanItem(Action.UPDATE, "u4", "Cy", "c" * 32, (Change("title", "a", "b"),)),
    )


def test_incomplete_target_holds_disables_and_creates_of_linked_objects() -> None:
    held = hold_for_incomplete_target(items(), ("sys_user came back empty",), {"u1", "u2"})
    by_id = {i.directory_id: i for i in held}
    for uid in ("u1", "u2"):
        assert by_id[uid].action is Action.SKIP and not by_id[uid].writes
        assert by_id[uid].reason == Reason.TARGET_INCOMPLETE
        assert (
            by_id[uid].status is Status.WARNING and "sys_user came back empty" in by_id[uid].message
        )
    assert by_id["u3"].action is Action.CREATE, "a directory object with no link is created"
    assert by_id["u4"].action is Action.UPDATE
    assert hold_for_incomplete_target(items(), (), {"u1"}) == items()


def test_incomplete_target_removes_no_membership_and_forgets_no_link() -> None:
    key = pair_key("g1", "u1")
    remove = PlanItem(Action.DELETE, key, "Agents / Ann", "r1", object_type="membership")
    again = PlanItem(Action.CREATE, pair_key("g1", "u2"), "Agents / Bob", None)
    plan = MembershipPlan(Plan((remove, again)), {}, (key,))
    held = hold_memberships_for_incomplete_target(plan, ("note",), {pair_key("g1", "u2")})
    assert not any(i.writes for i in held.plan.items) and held.forgotten == ()
    assert hold_memberships_for_incomplete_target(plan, (), set()) is plan
