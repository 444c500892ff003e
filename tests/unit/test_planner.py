"""The planner is a pure function: each behaviour admins rely on is one table row here."""

from __future__ import annotations

from dataclasses import replace

import pytest

from snsync.engine.planner import PlanOptions, effective_links, plan_users
from snsync.model import Action, Change, Desired, Reason, Status, TargetSnapshot

ACCOUNT = "snsync"
OPTIONS = PlanOptions(account=ACCOUNT)
DEPT = "d" * 32


def want(
    uid: str = "u1",
    upn: str = "ann@contoso.example",
    *,
    in_scope: bool = True,
    active: bool = True,
    **values: str,
) -> Desired:
    base = {
        "user_name": upn,
        "first_name": "Ann",
        "active": "true" if active else "false",
        "source": f"entra:{uid}",
    }
    base.update(values)
    return Desired(uid, upn, in_scope, active, base, {}, {}, (("user_name", upn),))


def record(sys_id: str, upn: str, **values: str) -> dict[str, str]:
    row = {
        "sys_id": sys_id,
        "user_name": upn,
        "first_name": "Ann",
        "active": "true",
        "source": "",
        "sys_created_by": "admin",
    }
    row.update(values)
    return row


def target(*records: dict[str, str]) -> TargetSnapshot:
    return TargetSnapshot(
        {r["sys_id"]: r for r in records}, {"cmn_department": {"engineering": DEPT}}
    )


def only(plan_items: tuple[object, ...]) -> object:
    assert len(plan_items) == 1, plan_items
    return plan_items[0]


def test_create_when_nothing_matches() -> None:
    plan = plan_users([want()], target(), {}, OPTIONS)
    item = only(plan.items)
    assert item.action is Action.CREATE and item.sys_id is None
    assert Change("user_name", None, "ann@contoso.example") in item.changes


def test_adopt_by_matching_case_insensitively_and_stamp_link() -> None:
    plan = plan_users([want()], target(record("a" * 32, "ANN@contoso.example")), {}, OPTIONS)
    item = only(plan.items)
    assert item.adopt and item.sys_id == "a" * 32 and item.action is Action.UPDATE
    assert {c.field for c in item.changes} == {"source", "user_name"}


def test_linked_record_with_no_difference_is_unchanged() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u1")
    plan = plan_users([want()], target(rec), {"u1": "a" * 32}, OPTIONS)
    assert plan.items == () and plan.unchanged == 1


def test_rename_updates_the_linked_record_in_place() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u1")
    plan = plan_users([want(upn="ann.new@contoso.example")], target(rec), {"u1": "a" * 32}, OPTIONS)
    item = only(plan.items)
    assert item.action is Action.UPDATE and item.sys_id == "a" * 32
    assert item.changes == (Change("user_name", "ann@contoso.example", "ann.new@contoso.example"),)


def test_link_rebuilt_from_stamp_when_state_is_lost() -> None:
    rec = record("a" * 32, "old-name@contoso.example", source="entra:u1", sys_created_by=ACCOUNT)
    assert effective_links({}, target(rec).users, OPTIONS) == {"u1": "a" * 32}
    plan = plan_users([want()], target(rec), {}, OPTIONS)
    assert only(plan.items).action is Action.UPDATE


def test_stale_link_to_deleted_record_falls_back_to_create() -> None:
    plan = plan_users([want()], target(), {"u1": "f" * 32}, OPTIONS)
    assert only(plan.items).action is Action.CREATE


@pytest.mark.parametrize(
    ("desired", "linked", "expected_action", "expected_reason"),
    [
        (want(in_scope=False, active=False), True, Action.DISABLE, None),
        (want(active=False), True, Action.DISABLE, None),
        (want(active=False), False, Action.SKIP, Reason.NOT_ACTIVE),
        (want(in_scope=False, active=False), False, None, None),
    ],
)
def test_disable_and_inactive_users(
    desired: Desired, linked: bool, expected_action: Action | None, expected_reason: str | None
) -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u1" if linked else "")
    plan = plan_users([desired], target(rec), {"u1": "a" * 32} if linked else {}, OPTIONS)
    if expected_action is None:
        assert plan.items == ()
        return
    item = only(plan.items)
    assert item.action is expected_action and item.reason == expected_reason


def test_out_of_scope_disable_touches_only_active() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u1", first_name="Old")
    plan = plan_users([want(in_scope=False, active=False)], target(rec), {"u1": "a" * 32}, OPTIONS)
    assert only(plan.items).changes == (Change("active", "true", "false"),)


def test_linked_user_gone_from_directory_is_disabled_once() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u1")
    plan = plan_users([], target(rec), {"u1": "a" * 32}, OPTIONS)
    assert only(plan.items).action is Action.DISABLE
    disabled = plan_users([], target({**rec, "active": "false"}), {"u1": "a" * 32}, OPTIONS)
    assert disabled.items == ()


def test_re_enable_when_user_returns() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u1", active="false")
    plan = plan_users([want()], target(rec), {"u1": "a" * 32}, OPTIONS)
    assert only(plan.items).action is Action.ENABLE


def test_ambiguous_match_fails_without_write() -> None:
    recs = (record("a" * 32, "ann@contoso.example"), record("b" * 32, "Ann@Contoso.example"))
    item = only(plan_users([want()], target(*recs), {}, OPTIONS).items)
    assert item.status is Status.FAILURE and item.reason == Reason.AMBIGUOUS_MATCH
    assert not item.writes


def test_empty_matching_value_is_skipped() -> None:
    item = only(plan_users([want(upn="")], target(), {}, OPTIONS).items)
    assert item.reason == Reason.MISSING_MATCH_VALUE and item.status is Status.SKIPPED


@pytest.mark.parametrize("name", ["admin", "system", "guest"])
def test_protected_local_accounts_are_never_adopted(name: str) -> None:
    item = only(plan_users([want(upn=name)], target(record("a" * 32, name)), {}, OPTIONS).items)
    assert item.reason == Reason.PROTECTED_RECORD and not item.writes


def test_unowned_records_are_never_disabled() -> None:
    local = record("a" * 32, "local.person@contoso.example")
    assert plan_users([], target(local), {}, OPTIONS).items == ()


def test_record_of_another_integration_is_not_taken_over() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="ldap:CN=Ann")
    item = only(plan_users([want()], target(rec), {}, OPTIONS).items)
    assert item.reason == Reason.OWNED_ELSEWHERE and not item.writes


def test_match_already_linked_to_another_user_fails() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u9")
    item = only(plan_users([want()], target(rec), {"u9": "a" * 32}, OPTIONS).items[:1])
    assert item.reason == Reason.MATCH_LINKED_ELSEWHERE


@pytest.mark.parametrize(
    ("option", "action"),
    [("create", Action.CREATE), ("disable", Action.DISABLE)],
)
def test_switched_off_actions_become_skips(option: str, action: Action) -> None:
    options = replace(OPTIONS, **{option: False})
    if action is Action.CREATE:
        plan = plan_users([want()], target(), {}, options)
    else:
        rec = record("a" * 32, "ann@contoso.example", source="entra:u1")
        plan = plan_users([], target(rec), {"u1": "a" * 32}, options)
    item = only(plan.items)
    assert item.action is Action.SKIP and item.reason == Reason.ACTION_SWITCHED_OFF


def test_skip_out_of_scope_deletions_keeps_user_active() -> None:
    rec = record("a" * 32, "ann@contoso.example", source="entra:u1")
    options = replace(OPTIONS, skip_out_of_scope_deletions=True)
    item = only(plan_users([], target(rec), {"u1": "a" * 32}, options).items)
    assert item.reason == Reason.OUT_OF_SCOPE_KEPT and not item.writes


def test_department_resolved_by_display_value_and_missing_one_warns() -> None:
    good = replace(want(), references={"department": ("cmn_department", "Engineering")})
    item = only(plan_users([good], target(), {}, OPTIONS).items)
    assert Change("department", None, DEPT, "Engineering") in item.changes
    bad = replace(want(), references={"department": ("cmn_department", "Research")})
    item = only(plan_users([bad], target(), {}, OPTIONS).items)
    assert item.status is Status.WARNING and item.reason == Reason.INVALID_LOOKUP
    assert "department" not in {c.field for c in item.changes}


def test_manager_not_provisioned_warns_and_is_left_empty() -> None:
    ann = replace(want(), references={"manager": ("sys_user", "nobody")})
    item = only(plan_users([ann], target(), {}, OPTIONS).items)
    assert item.reason == Reason.MANAGER_NOT_PROVISIONED and not item.deferred


def test_expression_failure_fails_only_that_object() -> None:
    broken = replace(want("u2", "bob@contoso.example"), error="Item: index out of range")
    plan = plan_users([want(), broken], target(), {}, OPTIONS)
    statuses = {i.directory_id: i.status for i in plan.items}
    assert statuses == {"u1": Status.SUCCESS, "u2": Status.FAILURE}
