"""The user engine end to end: snsync's CLI against the sandbox, through real sockets, MSAL and
requests. Each test starts from the demo tenant and instance."""

from __future__ import annotations

from snsync.sandbox.runner import RunningSandbox

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync

ADELE = "adele.vance@contoso.example"
LEE = "lee.gu@contoso.example"


def test_first_run_creates_adopts_and_links_then_second_run_writes_nothing(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin, sandbox: RunningSandbox
) -> None:
    before = {r["sys_id"]: r for r in sn_admin.rows("sys_user")}
    first = snsync("run", "--once")
    assert first.exit_code == 0, first.output
    lee = sn_admin.one("sys_user", f"user_name={LEE}")
    assert lee["active"] == "true" and lee["first_name"] == "Lee" and lee["last_name"] == "Gu"
    assert lee["source"] == f"entra:{graph_admin.user(LEE)['id']}"
    adele = sn_admin.one("sys_user", f"user_name={ADELE}")
    assert adele["sys_id"] in before, "the existing record was adopted, not duplicated"
    assert adele["manager"] == lee["sys_id"], "manager created in the same cycle is set"
    engineering = sn_admin.one("cmn_department", "name=Engineering")
    assert adele["department"] == engineering["sys_id"]

    writes_before = sandbox.servicenow_app.write_count()
    second = snsync("run", "--once", "--output", "json")
    assert second.exit_code == 0
    assert sandbox.servicenow_app.write_count() == writes_before
    assert "Create" not in snsync.json("run", "--once")["counts"]


def test_local_accounts_and_unowned_records_are_never_touched(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    untouched = {
        r["sys_id"]: r
        for r in sn_admin.rows("sys_user")
        if r["user_name"] in ("admin", "system", "legacy.user@contoso.example")
    }
    assert len(untouched) == 3
    assert snsync("run", "--once").exit_code == 0
    after = {r["sys_id"]: r for r in sn_admin.rows("sys_user")}
    for sys_id, row in untouched.items():
        assert after[sys_id] == row


def test_rename_updates_in_place(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    snsync("run", "--once")
    lee = graph_admin.user(LEE)
    sys_id = sn_admin.one("sys_user", f"user_name={LEE}")["sys_id"]
    graph_admin.call(
        "PATCH", f"users/{lee['id']}", {"userPrincipalName": "lee.gu2@contoso.example"}
    )
    assert snsync("run", "--once").exit_code == 0
    renamed = sn_admin.one("sys_user", "user_name=lee.gu2@contoso.example")
    assert renamed["sys_id"] == sys_id
    assert sn_admin.rows("sys_user", f"user_name={LEE}") == []


def test_unassign_disables_and_reassign_enables(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    snsync("run", "--once")
    lee = graph_admin.user(LEE)
    graph_admin.unassign(lee["id"])
    plan = snsync.json("plan")
    disable = [i for i in plan["items"] if i["directory_id"] == lee["id"]]
    assert [i["action"] for i in disable] == ["Disable"]
    assert snsync("run", "--once").exit_code == 0
    row = sn_admin.one("sys_user", f"user_name={LEE}")
    assert row["active"] == "false" and row["locked_out"] == "true"

    graph_admin.assign(lee["id"])
    result = snsync("run", "--once")
    assert "Enable" in result.output
    row = sn_admin.one("sys_user", f"user_name={LEE}")
    assert row["active"] == "true" and row["locked_out"] == "false"


def test_disabled_and_soft_deleted_users_are_disabled(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    snsync("run", "--once")
    adele = graph_admin.user(ADELE)
    lee = graph_admin.user(LEE)
    graph_admin.call("PATCH", f"users/{adele['id']}", {"accountEnabled": False})
    graph_admin.call("DELETE", f"users/{lee['id']}")
    assert snsync("run", "--once").exit_code == 0
    assert sn_admin.one("sys_user", f"user_name={ADELE}")["active"] == "false"
    assert sn_admin.one("sys_user", f"user_name={LEE}")["active"] == "false"
    logs = snsync.json("logs", "--action", "Disable")
    assert {e["directory_id"] for e in logs} >= {adele["id"], lee["id"]}


def test_ambiguous_match_fails_that_user_only(snsync: Snsync, sn_admin: ServiceNowAdmin) -> None:
    for name in ("lee.gu.a", "lee.gu.b"):
        sn_admin.insert("sys_user", {"user_name": name, "email": LEE})
    snsync.reconfigure(
        mappings={
            "users": [
                {"target": "email", "source": "mail", "matching": True, "precedence": 1},
                {"target": "user_name", "source": "userPrincipalName"},
                {"target": "first_name", "source": "givenName"},
            ]
        }
    )
    result = snsync("run", "--once")
    assert result.exit_code == 1
    assert "AmbiguousMatch" in result.output and "Lee Gu" in result.output
    assert {r["user_name"] for r in sn_admin.rows("sys_user", f"email={LEE}")} == {
        "lee.gu.a",
        "lee.gu.b",
    }
    assert sn_admin.rows("sys_user", "user_name=brian.johnson@contoso.example")


def test_missing_matching_attribute_is_skipped(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    user = graph_admin.create_user("no.mail")
    graph_admin.assign(user["id"])
    snsync.reconfigure(
        mappings={
            "users": [
                {"target": "email", "source": "mail", "matching": True, "precedence": 1},
                {"target": "user_name", "source": "userPrincipalName"},
            ]
        }
    )
    assert snsync("run", "--once").exit_code == 0
    skipped = snsync.json("logs", "--status", "Skipped")
    assert any(
        e["reason"] == "EntryJoiningPropertyValueIsMissing" and e["directory_id"] == user["id"]
        for e in skipped
    )
    assert sn_admin.rows("sys_user", "user_name=no.mail@contoso.example") == []


def test_plan_and_dry_run_send_no_write(snsync: Snsync, sandbox: RunningSandbox) -> None:
    before = sandbox.servicenow.stats.by_method.copy()
    assert snsync("plan").exit_code == 0
    assert snsync("run", "--once", "--dry-run").exit_code == 0
    after = sandbox.servicenow.stats.by_method
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        assert after.get(method, 0) == before.get(method, 0)
    assert sandbox.servicenow_app.write_count() == 0


def test_provision_on_demand_explains_each_step(snsync: Snsync, sn_admin: ServiceNowAdmin) -> None:
    result = snsync("provision", "brian.johnson@contoso.example")
    assert result.exit_code == 0, result.output
    for step in (
        "import:",
        "scope: in scope: member of assigned group 'ServiceNow Agents'",
        "action: Create",
        "attribute: user_name",
        "result: Warning [ManagerNotProvisioned]",
    ):
        assert step in result.output
    assert sn_admin.one("sys_user", "user_name=brian.johnson@contoso.example")["active"] == "true"
    out = snsync("provision", "joni.sherman@contoso.example")
    assert "not in scope: not assigned" in out.output
    assert sn_admin.rows("sys_user", "user_name=joni.sherman@contoso.example") == []


def test_logs_filter_by_user_and_status(snsync: Snsync) -> None:
    snsync("run", "--once")
    entries = snsync.json("logs", "--user", "Lee Gu")
    assert entries and all(e["display_name"] == "Lee Gu" for e in entries)
    assert entries[0]["action"] == "Create"
    assert {"field": "user_name", "old": None, "new": LEE, "label": None} in entries[0]["changes"]
    assert snsync.json("logs", "--status", "Failure") == []
    text = snsync("logs", "--since", "1h", "--action", "create").output
    assert "Create" in text and "Lee Gu" in text


def test_state_file_lost_relinks_by_stamp_without_duplicates(
    snsync: Snsync, sn_admin: ServiceNowAdmin, sandbox: RunningSandbox
) -> None:
    snsync("run", "--once")
    count = len(sn_admin.rows("sys_user"))
    (sandbox.directory / "state.db").unlink()
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0
    assert len(sn_admin.rows("sys_user")) == count


def test_provision_on_demand_sets_a_provisioned_manager(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    snsync("run", "--once")
    lee = graph_admin.user(LEE)
    user = graph_admin.create_user("new.hire", givenName="New", surname="Hire")
    graph_admin.call(
        "PUT",
        f"users/{user['id']}/manager/$ref",
        {"@odata.id": f"https://graph.microsoft.com/v1.0/users/{lee['id']}"},
    )
    graph_admin.assign(user["id"])
    result = snsync("provision", "new.hire@contoso.example")
    assert result.exit_code == 0 and "result: Success" in result.output, result.output
    created = sn_admin.one("sys_user", "user_name=new.hire@contoso.example")
    assert created["manager"] == sn_admin.one("sys_user", f"user_name={LEE}")["sys_id"]


def test_logs_by_upn_find_every_row_of_that_user(snsync: Snsync, graph_admin: GraphAdmin) -> None:
    snsync("run", "--once")
    lee = graph_admin.user(LEE)
    graph_admin.call("PATCH", f"users/{lee['id']}", {"jobTitle": "CTO"})
    snsync("run", "--once")
    actions = [e["action"] for e in snsync.json("logs", "--user", LEE)]
    assert actions == ["Create", "Update"]


def test_report_of_an_adopted_manager_is_written_once(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    lynne = graph_admin.user("lynne.robbins@contoso.example")
    graph_admin.assign(lynne["id"])
    report = snsync.json("run", "--once")
    lynne_results = [r for r in report["results"] if r["directory_id"] == lynne["id"]]
    assert [r["action"] for r in lynne_results] == ["Create"], "no second write for manager"
    megan = sn_admin.one("sys_user", "user_name=megan.bowen@contoso.example")
    created = sn_admin.one("sys_user", "user_name=lynne.robbins@contoso.example")
    assert created["manager"] == megan["sys_id"]
