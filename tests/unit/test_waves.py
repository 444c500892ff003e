"""Execution waves (pure): managers created in a wave before their reports, whose creates name
them through placeholders; a reporting loop ends in a follow-up update."""

from __future__ import annotations

import gc
from dataclasses import replace

from snsync.engine.planner import PlanOptions, plan_users
from snsync.engine.waves import execution_waves, user_waves
from snsync.model import Action, Change, Desired, PlanItem, TargetSnapshot, placeholder

OPTIONS = PlanOptions(account="snsync")


def want(uid: str, manager: str | None = None) -> Desired:
    upn = f"{uid}@contoso.example"
    values = {"user_name": upn, "active": "true", "source": f"entra:{uid}"}
    refs = {"manager": ("sys_user", manager)} if manager else {}
    return Desired(uid, uid, True, True, values, {}, refs, (("user_name", upn),))


def plan(*wanted: Desired) -> tuple[PlanItem, ...]:
    return plan_users(list(wanted), TargetSnapshot({}), {}, OPTIONS).items


def test_managers_are_created_in_a_wave_before_their_reports() -> None:
    items = plan(want("eng", "vp"), want("vp", "ceo"), want("ceo"))
    assert [[i.directory_id for i in w] for w in execution_waves(items)] == [
        ["ceo"],
        ["vp"],
        ["eng"],
    ]
    waves = user_waves(items)
    vp = next(i for i in waves[1] if i.directory_id == "vp")
    assert Change("manager", None, placeholder("user", "ceo")) in vp.changes
    assert vp.pending == {"manager"} and not vp.deferred


def test_an_adopted_manager_is_named_by_its_sys_id_at_once() -> None:
    boss = replace(
        next(i for i in plan(want("boss")) if i.directory_id == "boss"),
        action=Action.UPDATE,
        sys_id="b" * 32,
        adopt=True,
    )
    ann = next(i for i in plan(want("boss"), want("ann", "boss")) if i.directory_id == "ann")
    waves = user_waves([boss, ann])
    ann_item = next(i for w in waves for i in w if i.directory_id == "ann")
    assert Change("manager", None, "b" * 32) in ann_item.changes and not ann_item.pending


def test_a_reporting_loop_gets_a_follow_up_update() -> None:
    waves = user_waves(plan(want("a", "b"), want("b", "a")))
    flat = [i for w in waves for i in w]
    assert sorted(i.directory_id for i in flat if i.action is Action.CREATE) == ["a", "b"]
    (followup,) = [i for i in flat if i.action is Action.UPDATE]
    first = waves[0][0].directory_id
    other = "b" if first == "a" else "a"
    assert followup.directory_id == first and followup is waves[-1][0]
    assert followup.sys_id == placeholder("user", first)
    assert followup.changes == (Change("manager", "", placeholder("user", other)),)
    assert followup.pending == {"sys_id", "manager"}


def test_a_manager_without_a_record_this_cycle_leaves_the_field_empty() -> None:
    items = plan(want("boss"), want("ann", "boss"))
    boss = next(i for i in items if i.directory_id == "boss")
    skipped = replace(boss, action=Action.SKIP)  # e.g. held by back-off: no create
    ann = next(i for i in items if i.directory_id == "ann")
    (wave,) = user_waves([skipped, ann])
    ann_item = next(i for i in wave if i.directory_id == "ann")
    assert "manager" not in {c.field for c in ann_item.changes} and not ann_item.pending


def test_waves_leave_no_reference_cycle_holding_the_items() -> None:
    # The cycle freezes the collector's view after planning (gc.freeze): a cycle here would
    # keep every original item for the whole run.
    items = plan(want("eng", "vp"), want("vp", "ceo"), want("ceo"), want("a", "b"), want("b", "a"))
    gc.collect()
    gc.disable()
    try:
        user_waves(items)
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0


def test_reports_of_one_manager_share_its_placeholder_and_change() -> None:
    items = plan(want("ceo"), want("ann", "ceo"), want("bob", "ceo"))
    made = {"ceo": placeholder("user", "ceo")}
    waves = user_waves(items, made)
    reports = [i for w in waves for i in w if i.directory_id in ("ann", "bob")]
    managers = [next(c for c in i.changes if c.field == "manager") for i in reports]
    assert managers[0] == managers[1] == Change("manager", None, made["ceo"])
    assert managers[0].new is made["ceo"] and managers[1].new is made["ceo"]
