"""Groups and memberships end to end against the sandbox."""

from __future__ import annotations

from snsync.sandbox.demo_tenant import demo_group_id, demo_user_id

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync

AGENTS = "ServiceNow Agents"
APPROVERS = "ServiceNow Approvers"


def members(sn_admin: ServiceNowAdmin, group_name: str) -> set[str]:
    group = sn_admin.one("sys_user_group", f"name={group_name}")
    users = {u["sys_id"]: u["user_name"] for u in sn_admin.rows("sys_user")}
    return {
        users[r["user"]] for r in sn_admin.rows("sys_user_grmember", f"group={group['sys_id']}")
    }


def test_assigned_groups_are_created_with_their_members(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    assert snsync("run", "--once").exit_code == 0
    agents = sn_admin.one("sys_user_group", f"name={AGENTS}")
    assert agents["active"] == "true"
    assert agents["source"] == f"entra:{demo_group_id(AGENTS)}"
    assert "agents who work tickets" in agents["description"]
    assert members(sn_admin, AGENTS) == {
        f"{n}@contoso.example"
        for n in (
            "nestor.wilke",
            "miriam.graham",
            "brian.johnson",
            "sanjay.shah",
            "emily.braun",
            "adele.vance",
        )
    }
    # Direct members only (as Microsoft): the nested group's members are not in scope.
    assert "johanna.lorenz@contoso.example" not in members(sn_admin, APPROVERS)
    assert sn_admin.rows("sys_user_group", "name=All Staff") == []


def test_existing_group_is_adopted_and_updated(snsync: Snsync, sn_admin: ServiceNowAdmin) -> None:
    existing = sn_admin.insert("sys_user_group", {"name": AGENTS.upper(), "description": "old"})
    assert snsync("run", "--once").exit_code == 0
    adopted = sn_admin.one("sys_user_group", f"sys_id={existing['sys_id']}")
    assert adopted["name"] == AGENTS and adopted["description"] != "old"
    assert len(sn_admin.rows("sys_user_group", f"name={AGENTS}")) == 1


def test_group_changes_members_and_unassignment(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    snsync("run", "--once")
    group_id = demo_group_id(AGENTS)
    graph_admin.call("PATCH", f"groups/{group_id}", {"description": "Tier 1 and 2 agents"})
    graph_admin.call("DELETE", f"groups/{group_id}/members/{demo_user_id('emily.braun')}/$ref")
    lee = demo_user_id("lee.gu")
    graph_admin.call(
        "POST",
        f"groups/{group_id}/members/$ref",
        {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{lee}"},
    )
    assert snsync("run", "--once").exit_code == 0
    assert sn_admin.one("sys_user_group", f"name={AGENTS}")["description"] == "Tier 1 and 2 agents"
    now = members(sn_admin, AGENTS)
    assert "lee.gu@contoso.example" in now and "emily.braun@contoso.example" not in now

    graph_admin.unassign(group_id)
    assert snsync("run", "--once").exit_code == 0
    assert sn_admin.one("sys_user_group", f"name={AGENTS}")["active"] == "false"
    graph_admin.assign(group_id)
    assert snsync("run", "--once").exit_code == 0
    assert sn_admin.one("sys_user_group", f"name={AGENTS}")["active"] == "true"


def test_hand_made_memberships_are_untouched(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    snsync("run", "--once")
    agents = sn_admin.one("sys_user_group", f"name={AGENTS}")
    service_desk = sn_admin.one("sys_user_group", "name=Service Desk")
    admin = sn_admin.one("sys_user", "user_name=admin")
    lee = sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")
    by_hand = [
        sn_admin.insert("sys_user_grmember", {"user": admin["sys_id"], "group": agents["sys_id"]}),
        sn_admin.insert("sys_user_grmember", {"user": lee["sys_id"], "group": agents["sys_id"]}),
        sn_admin.insert(
            "sys_user_grmember", {"user": lee["sys_id"], "group": service_desk["sys_id"]}
        ),
    ]
    graph_admin.call(
        "DELETE", f"groups/{demo_group_id(AGENTS)}/members/{demo_user_id('nestor.wilke')}/$ref"
    )
    assert snsync("run", "--once").exit_code == 0
    remaining = {r["sys_id"] for r in sn_admin.rows("sys_user_grmember")}
    assert {row["sys_id"] for row in by_hand} <= remaining
    assert "nestor.wilke@contoso.example" not in members(sn_admin, AGENTS)


def test_plan_shows_groups_and_memberships(snsync: Snsync) -> None:
    plan = snsync.json("plan")
    assert plan["counts"]["groups"] == {"Create": 2}
    assert plan["counts"]["memberships"] == {"Create": 9}
    text = snsync("plan").output
    assert "membership ServiceNow Agents / Brian Johnson" in text


def test_missing_department_warns_and_writes_the_rest(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    snsync("run", "--once")
    warning = [
        e for e in snsync.json("logs", "--status", "Warning") if e["display_name"] == "Nora Okafor"
    ]
    assert warning and warning[0]["reason"] == "InvalidLookupReference"
    assert "department 'Research' does not exist in cmn_department" in warning[0]["message"]
    nora = sn_admin.one("sys_user", "user_name=nora.okafor@contoso.example")
    assert nora["department"] == "" and nora["title"] == "Research Scientist"


def test_create_missing_reference_creates_the_department(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    snsync.reconfigure(references={"create_missing": True})
    denied = snsync("run", "--once")
    assert denied.exit_code == 1 and "ACL Exception Insert Failed" in denied.output
    # Creating departments needs write access to cmn_department: the admin role, here.
    auth = {
        "type": "basic",
        "username": "admin",
        "password_file": str(snsync.sandbox.directory / "servicenow-password.txt"),
    }
    snsync.reconfigure(servicenow={"auth": auth})
    assert snsync("run", "--once").exit_code == 0
    research = sn_admin.one("cmn_department", "name=Research")
    nora = sn_admin.one("sys_user", "user_name=nora.okafor@contoso.example")
    assert nora["department"] == research["sys_id"]
    created = snsync.json("logs", "--user", "Research")
    departments = [e for e in created if e["object_type"] == "cmn_department"]
    assert [(e["action"], e["status"]) for e in departments] == [
        ("Create", "Failure"),
        ("Create", "Success"),
    ]
