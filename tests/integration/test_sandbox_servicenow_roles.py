"""Roles and creators in the sandbox instance (issue 9 item 8): role rows for every account and
fixture user, group roles and what members inherit, and sys_created_by naming who made a record."""

from __future__ import annotations

from typing import Any

import pytest

from snsync.sandbox.demo_instance import DEMO_PASSWORD, demo_instance, demo_sys_id
from snsync.sandbox.servicenow import ServiceNowApp
from tests.integration.sn_harness import ADMIN, Instance, Launch, listener_fixtures

pytestmark = pytest.mark.integration
server, start = listener_fixtures()
SERVICE_DESK = demo_sys_id("sys_user_group", "Service Desk")
ADELE = demo_sys_id("sys_user", "adele.vance@contoso.example")


def role_names(app: ServiceNowApp, user_name: str) -> set[tuple[str, str]]:
    """(role name, granted_by sys_id) pairs the user holds."""
    users = {u["sys_id"]: u["user_name"] for u in app.records("sys_user")}
    roles = {r["sys_id"]: r["name"] for r in app.records("sys_user_role")}
    return {
        (roles[row["role"]], row["granted_by"])
        for row in app.records("sys_user_has_role")
        if users.get(row["user"]) == user_name
    }


def fixture(**tables: Any) -> dict[str, Any]:
    return {
        "accounts": [
            {"user_name": "admin", "password": DEMO_PASSWORD, "roles": ["admin"]},
            {"user_name": "snsync", "password": DEMO_PASSWORD, "roles": ["user_admin", "itil"]},
        ],
        "tables": tables,
    }


def test_every_account_gets_a_user_row_role_rows_and_role_records() -> None:
    app = ServiceNowApp(fixture())
    assert sorted(u["user_name"] for u in app.records("sys_user")) == ["admin", "snsync"]
    assert role_names(app, "admin") == {("admin", "")}
    assert role_names(app, "snsync") == {("user_admin", ""), ("itil", "")}
    assert sorted(r["name"] for r in app.records("sys_user_role")) == [
        "admin",
        "itil",
        "user_admin",
    ]


def test_fixture_users_can_hold_roles_and_existing_role_rows_are_not_doubled() -> None:
    app = ServiceNowApp(
        fixture(
            sys_user_role=[{"name": "security_admin", "elevated_privilege": True}],
            sys_user=[
                {"user_name": "admin", "first_name": "System"},
                {"user_name": "sec.officer", "roles": ["security_admin"]},
            ],
            sys_user_has_role=[{"user": "admin", "role": "admin"}],
        )
    )
    assert role_names(app, "sec.officer") == {("security_admin", "")}
    assert len([r for r in app.records("sys_user_has_role") if r["user"]]) == 4
    (security,) = [r for r in app.records("sys_user_role") if r["name"] == "security_admin"]
    assert security["elevated_privilege"] == "true"
    assert not any(r for r in app.records("sys_user") if "roles" in r)


def test_group_roles_become_group_rows_and_members_inherit_them() -> None:
    app = ServiceNowApp(
        fixture(
            sys_user=[{"user_name": "ann"}, {"user_name": "bob"}],
            sys_user_group=[{"name": "Admins", "roles": ["admin"]}, {"name": "Plain"}],
            sys_user_grmember=[
                {"group": "Admins", "user": "ann"},
                {"group": "Plain", "user": "bob"},
            ],
        )
    )
    groups = {g["name"]: g for g in app.records("sys_user_group")}
    (grant,) = app.records("sys_group_has_role")
    assert grant["group"] == groups["Admins"]["sys_id"]
    assert groups["Admins"]["roles"] == "admin"
    assert groups["Plain"]["roles"] == ""
    assert role_names(app, "ann") == {("admin", groups["Admins"]["sys_id"])}
    assert role_names(app, "bob") == set()
    (inherited,) = [r for r in app.records("sys_user_has_role") if r["granted_by"]]
    assert inherited["inherited"] == "true"


def test_demo_service_desk_holds_itil_and_its_members_inherit_it() -> None:
    app = ServiceNowApp(demo_instance())
    assert ("itil", SERVICE_DESK) in role_names(app, "alex.wilber@contoso.example")
    assert role_names(app, "adele.vance@contoso.example") == set()


def test_a_bad_roles_value_is_a_fixture_error() -> None:
    from snsync.errors import FixtureError

    with pytest.raises(FixtureError, match=r"tables\.sys_user\[0\]\.roles: must be a list"):
        ServiceNowApp(fixture(sys_user=[{"user_name": "x", "roles": "admin"}]))


def test_joining_and_leaving_a_group_with_a_role_grants_and_revokes_it(start: Launch) -> None:
    sn: Instance = start()
    body = {"group": SERVICE_DESK, "user": ADELE}
    created = sn.call("POST", "/api/now/table/sys_user_grmember", json=body)
    assert created.status_code == 201, created.text
    assert role_names(sn.app, "adele.vance@contoso.example") == {("itil", SERVICE_DESK)}
    (row,) = [r for r in sn.app.records("sys_user_has_role") if r["user"] == ADELE]
    assert row["sys_created_by"] == "snsync"
    member = created.json()["result"]["sys_id"]
    deleted = sn.call("DELETE", f"/api/now/table/sys_user_grmember/{member}")
    assert deleted.status_code == 204
    assert role_names(sn.app, "adele.vance@contoso.example") == set()


def test_a_role_given_to_a_group_reaches_its_members_and_goes_with_it(start: Launch) -> None:
    sn: Instance = start()
    admin_role = demo_sys_id("sys_user_role", "admin")
    body = {"group": SERVICE_DESK, "role": admin_role}
    created = sn.call("POST", "/api/now/table/sys_group_has_role", json=body, auth=ADMIN)
    assert created.status_code == 201, created.text
    assert ("admin", SERVICE_DESK) in role_names(sn.app, "legacy.user@contoso.example")
    grant = created.json()["result"]["sys_id"]
    sn.call("DELETE", f"/api/now/table/sys_group_has_role/{grant}", auth=ADMIN)
    assert role_names(sn.app, "legacy.user@contoso.example") == {("itil", SERVICE_DESK)}


def test_sys_created_by_names_the_fixture_creator_or_admin_and_the_writer(start: Launch) -> None:
    sn: Instance = start(
        fixture(sys_user=[{"user_name": "a"}, {"user_name": "b", "sys_created_by": "snsync"}])
    )
    created = {u["user_name"]: u["sys_created_by"] for u in sn.app.records("sys_user")}
    assert created == {"a": "admin", "b": "snsync", "admin": "admin", "snsync": "admin"}
    updated = {u["user_name"]: u["sys_updated_by"] for u in sn.app.records("sys_user")}
    assert updated["b"] == "snsync"
    new = sn.call("POST", "/api/now/table/sys_user", json={"user_name": "c"}).json()["result"]
    assert (new["sys_created_by"], new["sys_updated_by"]) == ("snsync", "snsync")
    rows = sn.result("/api/now/table/sys_user", params={"sysparm_query": "sys_created_by=snsync"})
    assert sorted(r["user_name"] for r in rows) == ["b", "c"]
