"""Narrowed incremental cycles (engine/narrow.py): a cycle plans only the objects its changes
touch, and what it leaves out is what a full cycle would leave unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from snsync.config import load_config
from snsync.connections import connect
from snsync.engine.cycle import read_and_plan
from snsync.engine.plan import CyclePlan
from snsync.sandbox.demo_tenant import demo_group_id, demo_user_id
from snsync.sandbox.runner import RunningSandbox
from snsync.state import State

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync


@contextmanager
def planned(sandbox: RunningSandbox, full: bool = False) -> Iterator[CyclePlan]:
    """What `snsync plan` would plan now (read only)."""
    config = load_config(sandbox.config_path)
    conns = connect(config, read_only=True)
    state = State(config.state.path)
    try:
        yield read_and_plan(config, conns, state, force_full=full)
    finally:
        state.close()
        conns.close()


def test_a_quiet_cycle_plans_only_what_had_an_item(snsync: Snsync, sandbox: RunningSandbox) -> None:
    snsync("run", "--once")
    with planned(sandbox) as plan:
        assert plan.focus is not None, "narrowed"
        # Only the objects whose last item was not a write that succeeded (a create with a
        # warning) and their reports are planned, not the tenant; nor a disabled user never
        # created (a skip that depends on the user alone, until the user changes).
        assert demo_user_id("irvin.sayers") not in plan.focus.users
        assert len(plan.focus.users) <= 3 and not plan.focus.groups
        narrowed_in_scope = plan.in_scope
    with planned(sandbox, full=True) as whole:
        assert whole.focus is None and whole.in_scope == narrowed_in_scope


def test_a_disabled_user_never_created_is_planned_again_when_it_changes(
    snsync: Snsync, sandbox: RunningSandbox, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin
) -> None:
    snsync("run", "--once")
    irvin = demo_user_id("irvin.sayers")
    graph_admin.call("PATCH", f"users/{irvin}", {"accountEnabled": True})
    with planned(sandbox) as plan:
        assert plan.focus is not None and irvin in plan.focus.users
    snsync("run", "--once")
    assert sn_admin.one("sys_user", "user_name=irvin.sayers@contoso.example")["active"] == "true"


def test_a_changed_manager_plans_its_reports(
    snsync: Snsync, sandbox: RunningSandbox, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin
) -> None:
    snsync("run", "--once")
    snsync("run", "--once")
    lee = demo_user_id("lee.gu")
    graph_admin.call("PATCH", f"users/{lee}", {"accountEnabled": False})
    with planned(sandbox) as plan:
        assert plan.focus is not None and lee in plan.focus.users
        assert demo_user_id("adele.vance") in plan.focus.users, "a report of the manager"
        assert demo_user_id("patti.fernandez") not in plan.focus.users, "context, not focus"
        assert [i.action.value for i in plan.items() if i.directory_id == lee] == ["Disable"]


def test_a_removed_group_assignment_plans_its_members(
    snsync: Snsync, sandbox: RunningSandbox, graph_admin: GraphAdmin
) -> None:
    snsync("run", "--once")
    snsync("run", "--once")
    group = demo_group_id("ServiceNow Agents")
    graph_admin.unassign(group)
    with planned(sandbox) as plan:
        assert plan.focus is not None and group in plan.focus.groups
        assert [i.action.value for i in plan.items() if i.directory_id == group] == ["Disable"]
    result = snsync.json("run", "--once")
    assert snsync.json("status")["cycles"][0]["kind"] == "incremental"
    assert any(r["directory_id"] == group for r in result["results"])


def test_a_record_drifted_by_hand_is_planned_through_its_link(
    snsync: Snsync, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    snsync("run", "--once")
    snsync("run", "--once")
    adele = sn_admin.one("sys_user", "user_name=adele.vance@contoso.example")
    sn_admin.update("sys_user", adele["sys_id"], {"active": "false", "title": "x"})
    with planned(sandbox) as plan:
        assert plan.focus is not None and demo_user_id("adele.vance") in plan.focus.users
    snsync("run", "--once")
    repaired = sn_admin.one("sys_user", f"sys_id={adele['sys_id']}")
    assert (repaired["active"], repaired["title"]) == ("true", "Software Engineer")


def test_the_disable_threshold_counts_the_links_outside_the_focus(
    snsync: Snsync, sandbox: RunningSandbox, graph_admin: GraphAdmin
) -> None:
    snsync.reconfigure(safety={"max_disables": {"users": "10%"}})
    snsync("run", "--once")
    graph_admin.unassign(demo_group_id("ServiceNow Agents"))
    with planned(sandbox) as plan:
        assert plan.focus is not None and plan.held, "held, as a full cycle holds them"
        narrowed = [(h.count, h.limit) for h in plan.held]
    with planned(sandbox, full=True) as whole:
        assert [(h.count, h.limit) for h in whole.held] == narrowed


def test_the_servicenow_watermark_never_steps_back_after_a_narrowed_cycle(
    snsync: Snsync, sandbox: RunningSandbox
) -> None:
    def watermark() -> str:
        state = State(load_config(sandbox.config_path).state.path)
        try:
            return state.servicenow_watermark() or ""
        finally:
            state.close()

    snsync("run", "--once")
    before = watermark()
    for _ in range(2):
        snsync("run", "--once")  # loads next to no record
        assert snsync.json("status")["cycles"][0]["kind"] == "incremental"
        assert watermark() >= before > "1970"
