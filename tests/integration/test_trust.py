"""Attacks on snsync's ownership rules through the sandbox (issue 9): each test crafts what an
attacker with some write access could, runs real cycles, and checks that nothing was written that
should not be."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from snsync.mapping.defaults import DEFAULT_USER_MAPPINGS
from snsync.sandbox.demo_tenant import demo_group_id, demo_user_id
from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.server import Request, Response

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync
from .test_operations import Inbox, inbox  # noqa: F401  (the SMTP fixture)

LEE = "lee.gu@contoso.example"
AGENTS = "ServiceNow Agents"
WATCHED = ("user_name", "email", "active", "locked_out", "source", "name", "description")


def by_email_too() -> dict[str, Any]:
    """The default user mappings with email as a second matching attribute."""
    users = [dict(m) for m in DEFAULT_USER_MAPPINGS]
    for mapping in users:
        if mapping["target"] == "email":
            mapping.update(matching=True, precedence=2)
    return {"users": users}


def snapshot(sn_admin: ServiceNowAdmin, table: str, query: str) -> dict[str, str]:
    row = sn_admin.one(table, query)
    return {k: row.get(k, "") for k in ("sys_id", "sys_mod_count", *WATCHED)}


def grant(sn_admin: ServiceNowAdmin, user_sys_id: str, role: str) -> None:
    role_id = sn_admin.one("sys_user_role", f"name={role}")["sys_id"]
    sn_admin.insert("sys_user_has_role", {"user": user_sys_id, "role": role_id})


def results(snsync: Snsync, *args: str) -> tuple[int, list[dict[str, Any]]]:
    outcome = snsync(*args, "--output", "json")
    return outcome.exit_code, json.loads(outcome.stdout)["results"]


def test_stamped_admin_and_integration_account_are_left_untouched(
    snsync: Snsync, sn_admin: ServiceNowAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    lee, gone = demo_user_id("lee.gu"), "00000000-dead-beef-0000-000000000000"
    admin = sn_admin.one("sys_user", "user_name=admin")
    account = sn_admin.one("sys_user", "user_name=snsync")
    sn_admin.update("sys_user", admin["sys_id"], {"source": f"entra:{lee}"})
    sn_admin.update("sys_user", account["sys_id"], {"source": f"entra:{gone}"})
    before = [snapshot(sn_admin, "sys_user", f"user_name={n}") for n in ("admin", "snsync")]
    code, done = results(snsync, "run", "--once")
    assert code == 0
    after = [snapshot(sn_admin, "sys_user", f"user_name={n}") for n in ("admin", "snsync")]
    assert after == before, "neither the admin nor snsync's own account was written"
    created = sn_admin.one("sys_user", f"user_name={LEE}")
    assert created["sys_id"] != admin["sys_id"] and created["source"] == f"entra:{lee}"
    (lee_result,) = [r for r in done if r["directory_id"] == lee]
    assert (
        "was not trusted" in lee_result["message"] and "created by 'admin'" in lee_result["message"]
    )
    # And once snsync holds a link to its own stamped record, the forged one still is not used.
    assert results(snsync, "run", "--once", "--full")[0] == 0
    assert snapshot(sn_admin, "sys_user", "user_name=admin") == before[0]


def test_email_matched_admin_is_held_not_taken_over_until_approved(
    snsync: Snsync,
    sn_admin: ServiceNowAdmin,
    sandbox: RunningSandbox,
    inbox: tuple[Inbox, int],  # noqa: F811
) -> None:
    handler, port = inbox
    boss = sn_admin.insert("sys_user", {"user_name": "it.boss", "email": LEE})
    grant(sn_admin, boss["sys_id"], "admin")
    snsync.reconfigure(mappings=by_email_too(), notifications=_mail(port))
    before = snapshot(sn_admin, "sys_user", "user_name=it.boss")
    code, done = results(snsync, "run", "--once")
    assert code == 4
    (held,) = [r for r in done if r["reason"] == "AdoptionHeld"]
    assert held["status"] == "Skipped" and held["sys_id"] == boss["sys_id"]
    assert "holds the role admin" in held["message"]
    assert snapshot(sn_admin, "sys_user", "user_name=it.boss") == before
    assert sn_admin.rows("sys_user", f"user_name={LEE}") == [], "no duplicate either"
    assert "AdoptionHeld" in handler.messages[-1] and "Lee Gu" in handler.messages[-1]
    status = snsync("status").stdout
    assert f"HELD ADOPTION: user Lee Gu ({demo_user_id('lee.gu')})" in status
    assert "approve --adoption" in status
    plan = snsync.json("plan")
    assert [i["reason"] for i in plan["items"] if i["directory_id"] == demo_user_id("lee.gu")] == [
        "AdoptionHeld"
    ]

    refused = snsync("approve", "--adoption", "nobody@contoso.example")
    assert refused.exit_code == 2 and "no held adoption for 'nobody@contoso.example'" in (
        refused.output
    )
    assert snsync("approve", "--adoption", LEE).exit_code == 0
    adopted = sn_admin.one("sys_user", f"sys_id={boss['sys_id']}")
    assert adopted["user_name"] == LEE and adopted["source"] == f"entra:{demo_user_id('lee.gu')}"


def test_admin_role_inherited_through_a_group_holds_the_adoption(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    boss = sn_admin.insert("sys_user", {"user_name": LEE})
    admins = sn_admin.insert("sys_user_group", {"name": "Platform Admins"})
    role = sn_admin.insert("sys_user_role", {"name": "security_admin"})["sys_id"]
    sn_admin.insert("sys_group_has_role", {"group": admins["sys_id"], "role": role})
    sn_admin.insert("sys_user_grmember", {"group": admins["sys_id"], "user": boss["sys_id"]})
    before = snapshot(sn_admin, "sys_user", f"user_name={LEE}")
    code, done = results(snsync, "run", "--once")
    assert code == 4
    (held,) = [r for r in done if r["directory_id"] == demo_user_id("lee.gu")]
    assert held["reason"] == "AdoptionHeld" and "security_admin" in held["message"]
    assert snapshot(sn_admin, "sys_user", f"user_name={LEE}") == before


def test_provision_on_demand_does_not_adopt_through_a_later_attribute(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    other = sn_admin.insert("sys_user", {"user_name": "someone.else", "email": LEE})
    snsync.reconfigure(mappings=by_email_too())
    before = snapshot(sn_admin, "sys_user", "user_name=someone.else")
    result = snsync("provision", LEE)
    assert "AdoptionHeld" in result.output and "only this user was read" in result.output
    assert snapshot(sn_admin, "sys_user", f"sys_id={other['sys_id']}") == before


def test_inactive_record_matched_by_user_name_is_held(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    sn_admin.insert("sys_user", {"user_name": LEE, "active": "false"})
    before = snapshot(sn_admin, "sys_user", f"user_name={LEE}")
    code, done = results(snsync, "run", "--once")
    assert code == 4
    (held,) = [r for r in done if r["directory_id"] == demo_user_id("lee.gu")]
    assert held["reason"] == "AdoptionHeld" and "is inactive" in held["message"]
    assert snapshot(sn_admin, "sys_user", f"user_name={LEE}") == before


@pytest.mark.parametrize("attacker_name", ["Aaron Attacker", "Zed Attacker"])
def test_precedence_is_won_by_the_user_name_match_whatever_the_name_order(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin, attacker_name: str
) -> None:
    record = sn_admin.insert("sys_user", {"user_name": LEE, "email": "shared@contoso.example"})
    attacker = graph_admin.create_user(
        "mallory", displayName=attacker_name, mail="shared@contoso.example"
    )
    graph_admin.assign(attacker["id"])
    snsync.reconfigure(mappings=by_email_too())
    code, done = results(snsync, "run", "--once")
    assert code == 1
    won = sn_admin.one("sys_user", f"sys_id={record['sys_id']}")
    assert won["source"] == f"entra:{demo_user_id('lee.gu')}" and won["user_name"] == LEE
    (lost,) = [r for r in done if r["directory_id"] == attacker["id"]]
    assert lost["reason"] == "MatchClaimedByAnotherUser" and lost["status"] == "Failure"
    assert sn_admin.rows("sys_user", "user_name=mallory@contoso.example") == []


def test_built_in_group_with_a_role_is_not_adopted(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    # A group owner renames their Entra group to the name of ServiceNow's Service Desk (itil).
    graph_admin.call("PATCH", f"groups/{demo_group_id(AGENTS)}", {"displayName": "Service Desk"})
    desk = sn_admin.one("sys_user_group", "name=Service Desk")
    before = snapshot(sn_admin, "sys_user_group", "name=Service Desk")
    rows_before = sn_admin.rows("sys_user_grmember", f"group={desk['sys_id']}")
    code, done = results(snsync, "run", "--once")
    assert code == 4
    (held,) = [r for r in done if r["directory_id"] == demo_group_id(AGENTS)]
    assert held["reason"] == "AdoptionHeld" and "holds the role itil" in held["message"]
    assert snapshot(sn_admin, "sys_user_group", "name=Service Desk") == before
    assert sn_admin.rows("sys_user_grmember", f"group={desk['sys_id']}") == rows_before


def test_protected_group_is_never_written(snsync: Snsync, sn_admin: ServiceNowAdmin) -> None:
    existing = sn_admin.insert("sys_user_group", {"name": AGENTS, "description": "ours"})
    snsync.reconfigure(safety={"protected_groups": [existing["sys_id"]]})
    code, done = results(snsync, "run", "--once")
    (item,) = [r for r in done if r["directory_id"] == demo_group_id(AGENTS)]
    assert item["reason"] == "ProtectedRecord" and code == 0
    assert sn_admin.one("sys_user_group", f"sys_id={existing['sys_id']}")["description"] == "ours"
    assert sn_admin.rows("sys_user_grmember", f"group={existing['sys_id']}") == []


def test_a_linked_group_made_protected_gets_no_membership_writes(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin, sandbox: RunningSandbox
) -> None:
    assert snsync("run", "--once").exit_code == 0
    agents = sn_admin.one("sys_user_group", f"name={AGENTS}")
    snsync.reconfigure(safety={"protected_groups": [AGENTS]})
    group = demo_group_id(AGENTS)
    graph_admin.call("DELETE", f"groups/{group}/members/{demo_user_id('emily.braun')}/$ref")
    graph_admin.call("PATCH", f"groups/{group}", {"description": "changed"})
    rows = sn_admin.rows("sys_user_grmember", f"group={agents['sys_id']}")
    code, done = results(snsync, "run", "--once")
    assert code == 0
    assert sn_admin.rows("sys_user_grmember", f"group={agents['sys_id']}") == rows
    assert sn_admin.one("sys_user_group", f"name={AGENTS}") == agents
    (item,) = [r for r in done if r["directory_id"] == group]
    assert item["reason"] == "ProtectedRecord"


def test_pre_existing_membership_row_is_kept_when_its_user_leaves(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    agents = sn_admin.insert("sys_user_group", {"name": AGENTS})
    adele = sn_admin.one("sys_user", "user_name=adele.vance@contoso.example")
    before = sn_admin.insert(
        "sys_user_grmember", {"group": agents["sys_id"], "user": adele["sys_id"]}
    )
    assert snsync("run", "--once").exit_code == 0
    emily = sn_admin.one("sys_user", "user_name=emily.braun@contoso.example")
    ours = sn_admin.one("sys_user_grmember", f"group={agents['sys_id']}^user={emily['sys_id']}")
    assert ours["sys_created_by"] == "snsync"
    group = demo_group_id(AGENTS)
    for nickname in ("adele.vance", "emily.braun"):
        graph_admin.call("DELETE", f"groups/{group}/members/{demo_user_id(nickname)}/$ref")
    code, done = results(snsync, "run", "--once")
    assert code == 0
    remaining = {r["sys_id"] for r in sn_admin.rows("sys_user_grmember")}
    assert before["sys_id"] in remaining, "the row someone else made stays"
    assert ours["sys_id"] not in remaining, "the row snsync made goes"
    (kept,) = [r for r in done if r["reason"] == "MembershipRowNotOwned"]
    assert f"delete sys_user_grmember {before['sys_id']}" in kept["message"]
    assert "created by 'admin'" in kept["message"]
    again = results(snsync, "run", "--once", "--full")
    assert again[0] == 0 and not [r for r in again[1] if r["action"] == "Delete"]
    assert before["sys_id"] in {r["sys_id"] for r in sn_admin.rows("sys_user_grmember")}


def test_an_empty_sys_user_answer_changes_nothing(
    snsync: Snsync,
    sn_admin: ServiceNowAdmin,
    sandbox: RunningSandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert snsync("run", "--once").exit_code == 0
    rows_before = sn_admin.rows("sys_user_grmember")
    users_before = sn_admin.rows("sys_user")
    writes = sandbox.servicenow_app.write_count()
    restore = _answer_empty(sandbox, "/api/now/table/sys_user")
    with caplog.at_level(logging.WARNING):
        code, done = results(snsync, "run", "--once", "--full")
    assert code == 4
    assert sandbox.servicenow_app.write_count() == writes, "nothing was written"
    assert any("TargetIncomplete: sys_user came back empty" in m for m in caplog.messages)
    assert {r["reason"] for r in done if r["action"] == "Skip"} >= {"TargetIncomplete"}
    restore()
    assert snsync("run", "--once", "--full").exit_code == 0
    assert sandbox.servicenow_app.write_count() == writes, "links survived: no re-create"
    assert sn_admin.rows("sys_user_grmember") == rows_before
    assert sn_admin.rows("sys_user") == users_before


def _answer_empty(sandbox: RunningSandbox, path: str) -> Callable[[], None]:
    """Make ServiceNow answer list reads of one table with 200 and no rows."""
    app = sandbox.servicenow_app
    original = app.handle

    def handle(request: Request) -> Response:
        if request.method == "GET" and request.path.rstrip("/") == path:
            return Response(200, {"result": []})
        return original(request)

    app.handle = handle  # type: ignore[method-assign]

    def restore() -> None:
        app.handle = original  # type: ignore[method-assign]

    return restore


def _mail(port: int) -> dict[str, Any]:
    return {
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "sender": "snsync@contoso.example",
            "to": ["idm-team@contoso.example"],
        }
    }
