"""Membership rows by who made them (issue 9.5, and 9.6's lost answers): snsync deletes only rows
its own account created; a row someone else made stays when its member leaves, and the log says
how to remove it."""

from __future__ import annotations

from collections.abc import Mapping

from snsync.engine.memberships import MembershipPlan, pair_key, plan_memberships
from snsync.model import Action, Reason, Status

ACCOUNT = "snsync"
GROUPS = {"g1": "1" * 32, "g2": "2" * 32}
USERS = {"u1": "a" * 32, "u2": "b" * 32}
NAMES = {"g1": "Agents", "u1": "Ann", "u2": "Bob"}
K1, K2 = pair_key("g1", "u1"), pair_key("g1", "u2")


def row(sys_id: str, user: str, creator: str | None, group: str = "g1") -> dict[str, str]:
    values = {"sys_id": sys_id, "group": GROUPS[group], "user": USERS[user]}
    if creator is not None:
        values["sys_created_by"] = creator
    return values


def plan(
    wanted: list[str],
    rows: list[dict[str, str]],
    owned: Mapping[str, str] | None = None,
    kept: Mapping[str, str] | None = None,
) -> MembershipPlan:
    return plan_memberships(
        {"g1": wanted}, GROUPS, USERS, rows, owned or {}, NAMES, kept=kept or {}, account=ACCOUNT
    )


def test_a_row_that_existed_before_is_kept_when_its_member_leaves_and_the_log_says_so() -> None:
    first = plan(["u1"], [row("r1", "u1", "admin")])
    assert first.adopted == {K1: "r1"} and first.plan.items == ()
    left = plan([], [row("r1", "u1", "admin")], kept=first.adopted)
    item = left.plan.items[0]
    assert item.action is Action.SKIP and item.status is Status.SKIPPED and not item.writes
    assert item.reason == Reason.MEMBERSHIP_KEPT and item.sys_id == "r1"
    assert "created by 'admin'" in item.message and "delete sys_user_grmember r1" in item.message
    assert left.forgotten == (K1,), "reported once, then no longer tracked"


def test_a_row_snsync_created_is_deleted_when_its_member_leaves() -> None:
    result = plan([], [row("r1", "u1", ACCOUNT)], owned={K1: "r1"})
    assert [(i.action, i.sys_id) for i in result.plan.items] == [(Action.DELETE, "r1")]
    assert "added by snsync" in result.plan.items[0].message


def test_a_state_link_does_not_make_someone_elses_row_snsyncs() -> None:
    # An old state file linked adopted rows as owned: the creator decides.
    result = plan([], [row("r1", "u1", "admin")], owned={K1: "r1"})
    assert [i.reason for i in result.plan.items] == [Reason.MEMBERSHIP_KEPT]
    assert not any(i.writes for i in result.plan.items)
    moved = plan(["u1"], [row("r1", "u1", "admin")], owned={K1: "r1"})
    assert moved.adopted == {K1: "r1"} and moved.forgotten == (K1,)


def test_a_cached_row_without_creator_follows_its_link_kind() -> None:
    owned = plan([], [row("r1", "u1", None)], owned={K1: "r1"})
    assert [i.action for i in owned.plan.items] == [Action.DELETE]
    kept = plan([], [row("r1", "u1", None)], kept={K1: "r1"})
    assert [i.reason for i in kept.plan.items] == [Reason.MEMBERSHIP_KEPT]


def test_snsyncs_row_whose_link_was_lost_is_recognised_by_pair_and_creator() -> None:
    still = plan(["u1"], [row("r1", "u1", ACCOUNT)])
    assert still.recovered == {K1: "r1"} and still.adopted == {} and still.plan.items == ()
    gone = plan([], [row("r1", "u1", ACCOUNT), row("r2", "u2", "admin")])
    assert [(i.action, i.sys_id) for i in gone.plan.items] == [(Action.DELETE, "r1")]


def test_rows_of_groups_out_of_scope_are_never_touched() -> None:
    rows = [row("r9", "u1", ACCOUNT, group="g2")]
    result = plan([], rows, owned={pair_key("g2", "u1"): "r9"})
    assert result.plan.items == () and result.forgotten == ()


def test_without_a_known_account_no_unlinked_row_is_snsyncs() -> None:
    result = plan_memberships({"g1": []}, GROUPS, USERS, [row("r1", "u1", "")], {}, NAMES)
    assert result.plan.items == ()


def test_no_row_of_a_frozen_user_or_group_is_added_or_removed() -> None:
    rows = [row("r1", "u1", ACCOUNT)]
    owned = {K1: "r1"}
    for frozen in (["g1"], ["u1", "u2"]):
        result = plan_memberships(
            {"g1": ["u2"]}, GROUPS, USERS, rows, owned, NAMES, account=ACCOUNT, frozen=frozen
        )
        assert result.plan.items == () and result.forgotten == ()
