"""Trust rules of the planner (issue 9), each tried the way an attacker would: a forged stamp, a
matching value copied from an admin, a display name chosen to sort first, a protected record
reached through a stored link."""

from __future__ import annotations

from dataclasses import replace

import pytest

from snsync.engine.planner import PlanOptions, effective_links, plan_users, with_trust
from snsync.engine.trust import Trust, protected_set
from snsync.model import Action, Change, Desired, PlanItem, Reason, Status, TargetSnapshot

ACCOUNT = "snsync"
OPTIONS = PlanOptions(account=ACCOUNT)
BY_MAIL = replace(OPTIONS, matching_fields=("user_name", "email"))
ADMIN, BOSS, OTHER = "6816f79cc0a8016401c5a33be04be441", "b" * 32, "c" * 32


def want(uid: str, upn: str, mail: str = "", name: str = "", active: bool = True) -> Desired:
    values = {
        "user_name": upn,
        "email": mail,
        "active": "true" if active else "false",
        "source": f"entra:{uid}",
    }
    matching = (("user_name", upn), ("email", mail)) if mail else (("user_name", upn),)
    return Desired(uid, name or upn, True, active, values, {}, {}, matching)


def record(sys_id: str, user_name: str, **values: str) -> dict[str, str]:
    row = {
        "sys_id": sys_id,
        "user_name": user_name,
        "email": "",
        "active": "true",
        "source": "",
        "sys_created_by": "admin",
    }
    row.update(values)
    return row


def target(*records: dict[str, str]) -> TargetSnapshot:
    return TargetSnapshot({r["sys_id"]: r for r in records})


def item_for(items: tuple[PlanItem, ...], directory_id: str) -> PlanItem:
    found = [i for i in items if i.directory_id == directory_id]
    assert len(found) == 1, items
    return found[0]


def written(items: tuple[PlanItem, ...]) -> set[str | None]:
    return {i.sys_id for i in items if i.writes}


# 9.2 a stamp is a claim, not a proof


def test_forged_stamp_on_admin_is_not_a_link_and_the_log_says_why() -> None:
    admin = record(ADMIN, "admin", source="entra:u1")
    plan = plan_users([want("u1", "mallory@contoso.example")], target(admin), {}, OPTIONS)
    item = item_for(plan.items, "u1")
    assert item.action is Action.CREATE and item.sys_id is None
    assert "not trusted" in item.message and "created by 'admin'" in item.message
    assert ADMIN not in written(plan.items)


def test_forged_stamp_for_an_unassigned_object_disables_nothing() -> None:
    admin = record(ADMIN, "admin", source="entra:gone")
    maint = record(OTHER, "maint.person", source="entra:gone2")
    assert plan_users([], target(admin, maint), {}, OPTIONS).items == ()


def test_forged_stamp_on_an_ordinary_record_goes_through_adoption() -> None:
    rec = record(OTHER, "ann@contoso.example", source="entra:u1")
    item = only(plan_users([want("u1", "ann@contoso.example")], target(rec), {}, OPTIONS).items)
    assert item.adopt and item.sys_id == OTHER and "not trusted" in item.message


def test_stamp_is_trusted_on_snsyncs_own_records_and_through_the_state_file() -> None:
    own = record(OTHER, "ann@contoso.example", source="entra:u1", sys_created_by=ACCOUNT)
    assert effective_links({}, target(own).users, OPTIONS) == {"u1": OTHER}
    other = record(BOSS, "bob@contoso.example", source="entra:u2")
    assert effective_links({}, target(other).users, OPTIONS) == {}
    assert effective_links({"u2": BOSS}, target(other).users, OPTIONS) == {"u2": BOSS}
    unknown = {k: v for k, v in own.items() if k != "sys_created_by"}
    assert effective_links({}, target(unknown).users, OPTIONS) == {}


# 9.1 protection by identity on every write path


@pytest.mark.parametrize(
    ("desired", "active", "action"),
    [
        (want("u1", "mallory@contoso.example"), "true", Action.UPDATE),
        (want("u1", "admin", active=False), "true", Action.DISABLE),
        (want("u1", "admin"), "false", Action.ENABLE),
        (None, "true", Action.DISABLE),
    ],
)
def test_protected_account_linked_in_state_is_never_written(
    desired: Desired | None, active: str, action: Action
) -> None:
    admin = record(ADMIN, "admin", active=active, source="entra:u1", sys_created_by=ACCOUNT)
    plan = plan_users([desired] if desired else [], target(admin), {"u1": ADMIN}, OPTIONS)
    item = item_for(plan.items, "u1")
    assert item.action is Action.SKIP and item.reason == Reason.PROTECTED_RECORD
    assert f"not {action.value.lower()}d" in item.message and not item.writes


def test_integration_account_is_never_written_nor_adopted() -> None:
    own = record(OTHER, "snsync", source="entra:u1", sys_created_by=ACCOUNT)
    linked = plan_users([], target(own), {"u1": OTHER}, OPTIONS)
    assert item_for(linked.items, "u1").reason == Reason.PROTECTED_RECORD
    matched = plan_users([want("u2", "SNSYNC")], target(record(OTHER, "snsync")), {}, OPTIONS)
    item = item_for(matched.items, "u2")
    assert item.reason == Reason.PROTECTED_RECORD and "integration account" in item.message


@pytest.mark.parametrize("entry", ["ann@contoso.example", "ANN@contoso.example", OTHER])
def test_configured_protected_users_by_name_or_sys_id(entry: str) -> None:
    trust = Trust(ACCOUNT, protected_set([entry], ["admin"]))
    options = with_trust(OPTIONS, trust)
    rec = record(OTHER, "ann@contoso.example")
    item = only(plan_users([want("u1", "ann@contoso.example")], target(rec), {}, options).items)
    assert item.reason == Reason.PROTECTED_RECORD and not item.writes


def test_protected_groups_come_from_their_own_list() -> None:
    trust = Trust(ACCOUNT, protected_set([], ["admin"]), protected_set(["CAB Approval"]))
    options = with_trust(replace(OPTIONS, object_type="group", name_field="user_name"), trust)
    assert options.protected_names == frozenset({"cab approval"})


def test_no_account_is_created_under_a_protected_name() -> None:
    item = only(plan_users([want("u1", "Admin")], target(), {}, OPTIONS).items)
    assert item.reason == Reason.PROTECTED_RECORD and not item.writes


# 9.3 adoption of a privileged or inactive record needs approval


@pytest.mark.parametrize(
    ("values", "privileged", "why"),
    [
        ({}, {BOSS: ("admin",)}, "holds the role admin"),
        ({"active": "false"}, {}, "is inactive"),
        ({"locked_out": "true"}, {}, "is locked out"),
    ],
)
def test_adoption_of_privileged_or_inactive_record_is_held(
    values: dict[str, str], privileged: dict[str, tuple[str, ...]], why: str
) -> None:
    boss = record(BOSS, "boss@contoso.example", **values)
    options = replace(OPTIONS, privileged=privileged)
    plan = plan_users([want("u1", "boss@contoso.example")], target(boss), {}, options)
    item = only(plan.items)
    assert item.action is Action.SKIP and item.status is Status.SKIPPED
    assert item.reason == Reason.ADOPTION_HELD and item.sys_id == BOSS and not item.adopt
    assert why in item.message and "snsync approve --adoption u1" in item.message


def test_approval_releases_exactly_the_approved_pair() -> None:
    boss = record(BOSS, "boss@contoso.example", active="false")
    approved = replace(OPTIONS, approved={"u1": BOSS})
    item = only(plan_users([want("u1", "boss@contoso.example")], target(boss), {}, approved).items)
    assert item.adopt and item.action is Action.ENABLE and item.writes
    elsewhere = replace(OPTIONS, approved={"u1": OTHER})
    item = only(plan_users([want("u1", "boss@contoso.example")], target(boss), {}, elsewhere).items)
    assert item.reason == Reason.ADOPTION_HELD


def test_approval_never_releases_a_protected_record() -> None:
    admin = record(ADMIN, "admin")
    options = replace(OPTIONS, approved={"u1": ADMIN}, privileged={ADMIN: ("admin",)})
    item = only(plan_users([want("u1", "admin")], target(admin), {}, options).items)
    assert item.reason == Reason.PROTECTED_RECORD and not item.writes


# 9.4 precedence across all users


@pytest.mark.parametrize("first", ["Aaron", "Zed"])
def test_user_name_match_beats_an_email_match_whatever_the_name_order(first: str) -> None:
    boss = record(BOSS, "boss@contoso.example", email="boss@contoso.example")
    owner = want("u1", "boss@contoso.example", "boss@contoso.example", name="Mid")
    attacker = want("u2", "mallory@contoso.example", "boss@contoso.example", name=first)
    plan = plan_users([attacker, owner], target(boss), {}, BY_MAIL)
    assert item_for(plan.items, "u1").adopt
    lost = item_for(plan.items, "u2")
    assert lost.reason == Reason.MATCH_CLAIMED and lost.status is Status.FAILURE
    assert not lost.writes and "Mid" in lost.message


def test_two_matches_at_the_same_precedence_adopt_nothing() -> None:
    boss = record(BOSS, "boss@contoso.example", email="boss@contoso.example")
    one = want("u1", "one@contoso.example", "boss@contoso.example")
    two = want("u2", "two@contoso.example", "BOSS@contoso.example")
    plan = plan_users([one, two], target(boss), {}, BY_MAIL)
    for uid in ("u1", "u2"):
        item = item_for(plan.items, uid)
        assert item.reason == Reason.AMBIGUOUS_MATCH and not item.writes
    assert BOSS not in written(plan.items)


def test_adoption_through_a_later_attribute_does_not_rename_that_cycle() -> None:
    old = record(BOSS, "c.old@contoso.example", email="carol@contoso.example")
    carol = want("u1", "c.new@contoso.example", "carol@contoso.example")
    item = only(plan_users([carol], target(old), {}, BY_MAIL).items)
    assert item.adopt and "user_name" not in {c.field for c in item.changes}
    assert "stays 'c.old@contoso.example' this cycle" in item.message
    approved = replace(BY_MAIL, approved={"u1": BOSS})
    item = only(plan_users([carol], target(old), {}, approved).items)
    assert Change("user_name", "c.old@contoso.example", "c.new@contoso.example") in item.changes


def test_a_match_on_a_record_linked_to_another_user_still_fails() -> None:
    rec = record(BOSS, "boss@contoso.example", source="entra:u9", sys_created_by=ACCOUNT)
    plan = plan_users([want("u1", "boss@contoso.example")], target(rec), {}, OPTIONS)
    assert item_for(plan.items, "u1").reason == Reason.MATCH_LINKED_ELSEWHERE


def only(items: tuple[PlanItem, ...]) -> PlanItem:
    assert len(items) == 1, items
    return items[0]


def test_with_one_user_read_an_adoption_through_a_later_attribute_is_held() -> None:
    # Provision on demand cannot see another user whose user_name would win the record.
    record_ = record(BOSS, "boss@contoso.example", email="carol@contoso.example")
    alone = replace(BY_MAIL, whole_directory=False)
    carol = want("u1", "carol@contoso.example", "carol@contoso.example")
    item = only(plan_users([carol], target(record_), {}, alone).items)
    assert item.reason == Reason.ADOPTION_HELD and "only this user was read" in item.message
    owner = want("u2", "boss@contoso.example", "boss@contoso.example")
    assert only(plan_users([owner], target(record_), {}, alone).items).adopt
    assert only(plan_users([carol], target(record_), {}, BY_MAIL).items).adopt
