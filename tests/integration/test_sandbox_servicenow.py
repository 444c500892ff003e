"""The sandbox ServiceNow instance over real HTTPS: status codes, shapes, rules, paging, batch,
OAuth, ACLs, limits, and ServiceNow's own client (pysnc) working against it unchanged."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pysnc import ServiceNowClient
from pysnc.auth import ServiceNowClientCredentialsFlow
from pysnc.exceptions import RoleException

from snsync.errors import FixtureError
from snsync.sandbox.demo_instance import (
    ADMIN_SYS_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    demo_instance,
    demo_sys_id,
)
from snsync.sandbox.server import FaultPlan, SandboxServer
from snsync.sandbox.servicenow import ServiceNowApp, load_instance_file
from snsync.sandbox.tls import SandboxTls

from .sn_harness import ADMIN, SNSYNC, START, Clock, Instance

pytestmark = pytest.mark.integration

AUDITOR = ("auditor", DEMO_PASSWORD)
SYS_ID_LENGTH = 32
ADELE = demo_sys_id("sys_user", "adele.vance@contoso.example")
ALEX = demo_sys_id("sys_user", "alex.wilber@contoso.example")
MEGAN = demo_sys_id("sys_user", "megan.bowen@contoso.example")
MARKETING = demo_sys_id("cmn_department", "Marketing")
SALES = demo_sys_id("cmn_department", "Sales")
SERVICE_DESK = demo_sys_id("sys_user_group", "Service Desk")
DEMO_USERS = 8


@pytest.fixture(scope="module")
def server(sandbox_tls: SandboxTls) -> Iterator[SandboxServer]:
    """One HTTPS listener for the module; each test plugs a fresh app into it."""
    running = SandboxServer(ServiceNowApp(demo_instance()), sandbox_tls).start()
    yield running
    running.stop()


@pytest.fixture
def start(server: SandboxServer, sandbox_tls: SandboxTls) -> Iterator[Any]:
    """Serve a fresh instance (demo data unless a fixture is given) from the module's listener."""
    sessions: list[requests.Session] = []

    def launch(fixture: dict[str, Any] | None = None, **options: Any) -> Instance:
        clock = Clock()
        app = ServiceNowApp(fixture or demo_instance(), clock=clock, **options)
        server.app = app
        server.stats.reset()
        server.faults = FaultPlan()
        instance = Instance(app, server, str(sandbox_tls.ca_pem), clock)
        sessions.append(instance.session)
        return instance

    yield launch
    server.faults = FaultPlan()
    for session in sessions:
        session.close()


@pytest.fixture
def sn(start: Any) -> Instance:
    """A fresh demo instance."""
    instance: Instance = start()
    return instance


def error(response: requests.Response) -> tuple[int, str, Any]:
    body = response.json()
    assert body["status"] == "failure"
    return response.status_code, body["error"]["message"], body["error"]["detail"]


def user_names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["user_name"] for row in rows]


def create_user(sn: Instance, **values: Any) -> dict[str, Any]:
    response = sn.call("POST", "/api/now/table/sys_user", json=values)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


# --- reading -------------------------------------------------------------------------------


def test_list_answers_result_with_total_and_json_content_type(sn: Instance) -> None:
    response = sn.get("/api/now/table/sys_user")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.headers["X-Total-Count"] == str(DEMO_USERS)
    rows = response.json()["result"]
    assert len(rows) == DEMO_USERS
    assert user_names(rows) == sorted(user_names(rows), key=lambda n: _sys_id_of(rows, n))


def _sys_id_of(rows: list[dict[str, Any]], user_name: str) -> str:
    return str(next(row["sys_id"] for row in rows if row["user_name"] == user_name))


def test_versioned_path_is_the_same_api(sn: Instance) -> None:
    assert sn.result("/api/now/v1/table/sys_user") == sn.result("/api/now/table/sys_user")


def test_values_are_strings_and_references_carry_links(sn: Instance) -> None:
    alex = sn.result(f"/api/now/table/sys_user/{ALEX}")
    assert alex["active"] == "true"
    assert alex["locked_out"] == "false"
    assert alex["sys_mod_count"] == "0"
    assert alex["sys_created_on"] == "2024-01-15 09:00:00"
    assert alex["name"] == "Alex Wilber"
    assert alex["sys_id"] == ALEX
    assert alex["manager"] == {
        "link": f"{sn.base_url}/api/now/table/sys_user/{MEGAN}",
        "value": MEGAN,
    }
    assert alex["department"]["link"].endswith(f"/api/now/table/cmn_department/{MARKETING}")
    megan = sn.result(f"/api/now/table/sys_user/{MEGAN}")
    assert megan["manager"] == ""  # an empty reference is a plain empty string
    assert all(isinstance(value, str | dict) for value in alex.values())


def test_exclude_reference_link_gives_plain_sys_ids(sn: Instance) -> None:
    alex = sn.result(
        f"/api/now/table/sys_user/{ALEX}", params={"sysparm_exclude_reference_link": "true"}
    )
    assert alex["manager"] == MEGAN
    assert alex["department"] == MARKETING


def test_display_value_true(sn: Instance) -> None:
    path = f"/api/now/table/sys_user/{ALEX}"
    alex = sn.result(path, params={"sysparm_display_value": "true"})
    assert alex["manager"] == {
        "display_value": "Megan Bowen",
        "link": f"{sn.base_url}/api/now/table/sys_user/{MEGAN}",
    }
    assert alex["active"] == "true"
    assert alex["user_name"] == "alex.wilber@contoso.example"
    plain = sn.result(
        path, params={"sysparm_display_value": "true", "sysparm_exclude_reference_link": "true"}
    )
    assert plain["manager"] == "Megan Bowen"
    assert plain["department"] == "Marketing"
    megan = sn.result(f"/api/now/table/sys_user/{MEGAN}", params={"sysparm_display_value": "true"})
    assert megan["manager"] == ""


def test_display_value_all_wraps_every_field(sn: Instance) -> None:
    alex = sn.result(f"/api/now/table/sys_user/{ALEX}", params={"sysparm_display_value": "all"})
    assert alex["user_name"] == {
        "display_value": "alex.wilber@contoso.example",
        "value": "alex.wilber@contoso.example",
    }
    assert alex["manager"] == {
        "display_value": "Megan Bowen",
        "value": MEGAN,
        "link": f"{sn.base_url}/api/now/table/sys_user/{MEGAN}",
    }
    assert all(isinstance(value, dict) for value in alex.values())
    excluded = sn.result(
        f"/api/now/table/sys_user/{MEGAN}",
        params={"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"},
    )
    assert excluded["department"] == {"display_value": "Marketing", "value": MARKETING}
    assert excluded["manager"] == {"display_value": "", "value": ""}


def test_integer_display_value_is_grouped(sn: Instance) -> None:
    sn.call(
        "PATCH", f"/api/now/table/cmn_department/{SALES}", auth=ADMIN, json={"head_count": 1234}
    )
    sales = sn.result(
        f"/api/now/table/cmn_department/{SALES}", params={"sysparm_display_value": "all"}
    )
    assert sales["head_count"] == {"display_value": "1,234", "value": "1234"}


def test_fields_limit_the_record_and_dot_walk(sn: Instance) -> None:
    rows = sn.result(
        "/api/now/table/sys_user",
        params={
            "sysparm_fields": "user_name, manager.user_name,department.name,no_such_field",
            "sysparm_query": "user_name=alex.wilber@contoso.example",
        },
    )
    assert rows == [
        {
            "user_name": "alex.wilber@contoso.example",
            "manager.user_name": "megan.bowen@contoso.example",
            "department.name": "Marketing",
        }
    ]


def test_get_by_unknown_sys_id_is_404(sn: Instance) -> None:
    for sys_id in ("0" * 32, "not-a-sys-id"):
        assert error(sn.get(f"/api/now/table/sys_user/{sys_id}")) == (
            404,
            "No Record found",
            "Record doesn't exist or ACL restricts the record retrieval",
        )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/now/table/no_such_table"),
        ("POST", "/api/now/table/no_such_table"),
        ("GET", "/api/now/table/no_such_table/" + "0" * 32),
        ("GET", "/api/now/stats/no_such_table"),
    ],
)
def test_unknown_table_is_400(sn: Instance, method: str, path: str) -> None:
    response = sn.call(method, path, json={})
    assert error(response) == (400, "Invalid table no_such_table", None)


def test_unknown_api_path_is_400(sn: Instance) -> None:
    assert error(sn.get("/api/now/tables/sys_user")) == (
        400,
        "Requested URI does not represent any resource",
        None,
    )


def test_unsupported_method_is_405(sn: Instance) -> None:
    assert error(sn.call("DELETE", "/api/now/table/sys_user"))[0] == 405


def test_fixture_tables_beyond_the_schema_are_served(start: Any) -> None:
    fixture = demo_instance()
    fixture["tables"]["u_badge"] = [{"name": "Blue", "u_level": "3"}]
    sn: Instance = start(fixture)
    rows = sn.result("/api/now/table/u_badge", auth=ADMIN, params={"sysparm_display_value": "all"})
    assert [row["u_level"] for row in rows] == [{"display_value": "3", "value": "3"}]
    assert error(sn.get("/api/now/table/u_badge"))[0] == 403  # custom tables are admin-only


# --- queries and paging ----------------------------------------------------------------------


def test_keyset_paging_walks_every_record_in_sys_id_order(sn: Instance) -> None:
    seen: list[str] = []
    last = ""
    pages = 0
    while True:
        query = f"sys_id>{last}^ORDERBYsys_id" if last else "ORDERBYsys_id"
        response = sn.get(
            "/api/now/table/sys_user", params={"sysparm_query": query, "sysparm_limit": "3"}
        )
        page = [row["sys_id"] for row in response.json()["result"]]
        if not page:
            break
        pages += 1
        seen += page
        last = page[-1]
    assert pages == 3
    assert seen == sorted(row["sys_id"] for row in sn.app.records("sys_user"))


def test_offset_paging_total_count_and_link_header(sn: Instance) -> None:
    params = {"sysparm_query": "ORDERBYuser_name", "sysparm_limit": "3", "sysparm_offset": "3"}
    response = sn.get("/api/now/table/sys_user", params=params)
    assert response.headers["X-Total-Count"] == str(DEMO_USERS)
    assert len(response.json()["result"]) == 3
    links = {rel: _offset(link["url"]) for rel, link in response.links.items()}
    assert links == {"first": 0, "prev": 0, "next": 6, "last": 6}
    kept = parse_qs(urlsplit(response.links["next"]["url"]).query)
    assert kept["sysparm_query"] == ["ORDERBYuser_name"]
    assert kept["sysparm_limit"] == ["3"]
    assert response.headers["Link"].startswith(f"<{sn.base_url}/api/now/table/sys_user?")
    assert ';rel="first",' in response.headers["Link"]
    last_page = sn.get("/api/now/table/sys_user", params={**params, "sysparm_offset": "6"})
    assert set(last_page.links) == {"first", "prev", "last"}
    assert len(last_page.json()["result"]) == 2


def _offset(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["sysparm_offset"][0])


def test_suppress_pagination_header_drops_link_keeps_count(sn: Instance) -> None:
    response = sn.get(
        "/api/now/table/sys_user",
        params={"sysparm_limit": "2", "sysparm_suppress_pagination_header": "true"},
    )
    assert "Link" not in response.headers
    assert response.headers["X-Total-Count"] == str(DEMO_USERS)


def test_no_count_drops_total_count(sn: Instance) -> None:
    response = sn.get("/api/now/table/sys_user", params={"sysparm_no_count": "true"})
    assert "X-Total-Count" not in response.headers
    assert len(response.json()["result"]) == DEMO_USERS


def test_default_limit_is_ten_thousand(sn: Instance) -> None:
    response = sn.get("/api/now/table/sys_user")
    assert _limit(response.links["first"]["url"]) == 10_000
    assert set(response.links) == {"first", "last"}


def _limit(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["sysparm_limit"][0])


def test_unknown_field_in_query_matches_every_row(sn: Instance) -> None:
    rows = sn.result("/api/now/table/sys_user", params={"sysparm_query": "usr_name=nobody"})
    assert len(rows) == DEMO_USERS


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user_name=adele.vance@contoso.example", ["adele.vance"]),
        ("user_name=ADELE.VANCE@CONTOSO.EXAMPLE", ["adele.vance"]),
        (
            "user_nameSTARTSWITHa^user_name!=admin^user_name!=auditor",
            ["adele.vance", "alex.wilber"],
        ),
        ("emailENDSWITH@contoso.example^emailNOT LIKEvance^emailNOTLIKEwilber^emailLIKEo", None),
        ("user_nameINadmin,system", ["admin", "system"]),
        ("user_nameLIKEcontoso^user_nameNOT INlegacy.user@contoso.example,x", None),
        ("titleLIKEmarketing", ["alex.wilber", "megan.bowen"]),
        ("titleNOTLIKEmanager^emailISNOTEMPTY^user_nameLIKE@", ["alex.wilber", "legacy.user"]),
        ("emailISEMPTY", ["snsync", "system"]),
        ("employee_number>1001", ["adele.vance", "alex.wilber"]),
        ("employee_number>=1001^employee_number<1003", ["alex.wilber", "megan.bowen"]),
        ("employee_number<=0042", ["legacy.user"]),
        ("department=" + MARKETING, ["alex.wilber", "megan.bowen"]),
        ("department.name=Sales", ["adele.vance"]),
        ("manager.user_name=megan.bowen@contoso.example", ["alex.wilber"]),
        ("departmentISEMPTY^ORtitleLIKEretail^web_service_access_only=false", None),
        ("user_name=admin^NQuser_name=system", ["admin", "system"]),
        ("user_name=admin^ORuser_name=SYSTEM", ["admin", "system"]),
        ("user_name=ADMIN^title=System Administrator", ["admin"]),
        ("user_name=admin^title=Nobody", []),
        (f"sys_id={ADELE.upper()}", ["adele.vance"]),
        (f"sys_id={ADELE}^active=false", []),
        ("sys_created_on>2024-01-15 09:00:00", []),
        ("sys_created_on<=2024-01-15 09:00:00^user_name=system", ["system"]),
    ],
)
def test_query_operators(sn: Instance, query: str, expected: list[str] | None) -> None:
    rows = sn.result("/api/now/table/sys_user", params={"sysparm_query": query})
    found = sorted(name.split("@")[0] for name in user_names(rows))
    if expected is None:  # checked against the records instead of a literal list
        expected = sorted(_locally(sn, query))
    assert found == sorted(expected)


def _locally(sn: Instance, query: str) -> list[str]:
    users = sn.app.records("sys_user")
    by_query = {
        "emailENDSWITH@contoso.example^emailNOT LIKEvance^emailNOTLIKEwilber^emailLIKEo": [
            u
            for u in users
            if u["email"].endswith("@contoso.example")
            and "vance" not in u["email"]
            and "wilber" not in u["email"]
        ],
        "user_nameLIKEcontoso^user_nameNOT INlegacy.user@contoso.example,x": [
            u
            for u in users
            if "contoso" in u["user_name"] and not u["user_name"].startswith("legacy")
        ],
        "departmentISEMPTY^ORtitleLIKEretail^web_service_access_only=false": [
            u
            for u in users
            if (not u["department"] or "Retail" in u["title"])
            and u["web_service_access_only"] == "false"
        ],
    }
    return [u["user_name"].split("@")[0] for u in by_query[query]]


def test_order_by_and_order_by_desc(sn: Instance) -> None:
    ascending = sn.result("/api/now/table/sys_user", params={"sysparm_query": "ORDERBYuser_name"})
    descending = sn.result(
        "/api/now/table/sys_user", params={"sysparm_query": "ORDERBYDESCuser_name"}
    )
    assert user_names(ascending) == sorted(user_names(ascending))
    assert user_names(descending) == list(reversed(user_names(ascending)))


def test_order_by_reference_sorts_by_display_value(sn: Instance) -> None:
    rows = sn.result(
        "/api/now/table/sys_user",
        params={
            "sysparm_query": "departmentISNOTEMPTY^ORDERBYdepartment^ORDERBYuser_name",
            "sysparm_fields": "department.name",
        },
    )
    names = [row["department.name"] for row in rows]
    assert names == ["IT", "IT", "Marketing", "Marketing", "Sales"]


def test_group_members_by_dot_walked_user(sn: Instance) -> None:
    rows = sn.result(
        "/api/now/table/sys_user_grmember",
        params={
            "sysparm_query": "group.name=Service Desk^user.active=true",
            "sysparm_exclude_reference_link": "true",
        },
    )
    assert sorted(row["user"] for row in rows) == sorted(
        [ALEX, demo_sys_id("sys_user", "legacy.user@contoso.example")]
    )


def test_stats_count_and_group_by(sn: Instance) -> None:
    response = sn.get(
        "/api/now/stats/sys_user",
        params={"sysparm_count": "true", "sysparm_query": "emailLIKEcontoso.example"},
    )
    assert response.json() == {"result": {"stats": {"count": "6"}}}
    grouped = sn.get(
        "/api/now/stats/sys_user_grmember",
        params={"sysparm_count": "true", "sysparm_group_by": "group"},
    ).json()["result"]
    counts = {entry["groupby_fields"][0]["value"]: entry["stats"]["count"] for entry in grouped}
    assert counts == {SERVICE_DESK: "2", demo_sys_id("sys_user_group", "CAB Approval"): "2"}


# --- writing --------------------------------------------------------------------------------


def test_post_creates_with_system_fields_defaults_and_location(sn: Instance) -> None:
    response = sn.call(
        "POST",
        "/api/now/table/sys_user",
        json={
            "user_name": "nestor.wilke@contoso.example",
            "first_name": "Nestor",
            "last_name": "Wilke",
            "vip": True,
            "failed_attempts": 3,
            "no_such_field": "ignored",
            "sys_created_by": "ignored too",
        },
    )
    assert response.status_code == 201
    record = response.json()["result"]
    assert len(record["sys_id"]) == SYS_ID_LENGTH
    assert (
        response.headers["Location"] == f"{sn.base_url}/api/now/table/sys_user/{record['sys_id']}"
    )
    assert record["name"] == "Nestor Wilke"
    assert record["active"] == "true"
    assert record["locked_out"] == "false"
    assert record["vip"] == "true"
    assert record["failed_attempts"] == "3"
    assert record["sys_created_by"] == record["sys_updated_by"] == "snsync"
    assert record["sys_created_on"] == record["sys_updated_on"] == "2025-03-04 10:15:00"
    assert record["sys_mod_count"] == "0"
    assert "no_such_field" not in record
    assert sn.app.write_count() == 1


@pytest.mark.parametrize(
    ("given", "stored"), [(True, "true"), (False, "false"), ("1", "true"), ("0", "false")]
)
def test_booleans_are_normalised(sn: Instance, given: Any, stored: str) -> None:
    record = create_user(sn, user_name=f"flag-{stored}-{given!r}", vip=given)
    assert record["vip"] == stored


def test_post_with_display_value_all_returns_that_shape(sn: Instance) -> None:
    response = sn.call(
        "POST",
        "/api/now/table/sys_user",
        params={"sysparm_display_value": "all"},
        json={"user_name": "x@contoso.example", "department": SALES},
    )
    record = response.json()["result"]
    assert record["department"] == {
        "display_value": "Sales",
        "value": SALES,
        "link": f"{sn.base_url}/api/now/table/cmn_department/{SALES}",
    }
    assert record["active"] == {"display_value": "true", "value": "true"}


def test_input_display_value_resolves_references(sn: Instance) -> None:
    response = sn.call(
        "POST",
        "/api/now/table/sys_user",
        params={"sysparm_input_display_value": "true", "sysparm_exclude_reference_link": "true"},
        json={
            "user_name": "y@contoso.example",
            "department": "sales",
            "manager": "Megan Bowen",
            "location": "Atlantis",
            "company": "alex.wilber@contoso.example",
        },
    )
    record = response.json()["result"]
    assert record["department"] == SALES
    assert record["manager"] == MEGAN
    assert record["location"] == ""  # unresolvable: dropped silently
    assert record["company"] == ""
    by_user_name = sn.call(
        "PATCH",
        f"/api/now/table/sys_user/{record['sys_id']}",
        params={"sysparm_input_display_value": "true", "sysparm_exclude_reference_link": "true"},
        json={"manager": "alex.wilber@contoso.example"},
    )
    assert by_user_name.json()["result"]["manager"] == ALEX


def test_reference_without_input_display_value(sn: Instance) -> None:
    dangling = "f" * 32
    record = create_user(
        sn, user_name="z@contoso.example", department="Marketing", manager=dangling, location="?"
    )
    assert record["department"]["value"] == MARKETING  # a name is still looked up
    assert record["manager"]["value"] == dangling  # a sys_id is kept even if it points nowhere
    assert record["location"] == ""
    shown = sn.result(
        f"/api/now/table/sys_user/{record['sys_id']}", params={"sysparm_display_value": "all"}
    )
    assert shown["manager"]["display_value"] == ""


def test_patch_bumps_mod_count_and_noop_does_not(sn: Instance) -> None:
    path = f"/api/now/table/sys_user/{ADELE}"
    sn.clock.now = START + timedelta(minutes=5)
    changed = sn.call("PATCH", path, json={"title": "Store Manager"}).json()["result"]
    assert changed["sys_mod_count"] == "1"
    assert changed["sys_updated_on"] == "2025-03-04 10:20:00"
    assert changed["sys_updated_by"] == "snsync"
    sn.clock.now = START + timedelta(minutes=9)
    same = sn.call("PATCH", path, auth=ADMIN, json={"title": "Store Manager", "active": "1"})
    assert same.status_code == 200
    unchanged = same.json()["result"]
    assert unchanged["sys_mod_count"] == "1"
    assert unchanged["sys_updated_on"] == "2025-03-04 10:20:00"
    assert unchanged["sys_updated_by"] == "snsync"
    assert sn.app.write_count() == 2


def test_put_is_a_partial_update_too(sn: Instance) -> None:
    record = sn.call("PUT", f"/api/now/table/sys_user/{ADELE}", json={"title": "CEO"})
    assert record.status_code == 200
    result = record.json()["result"]
    assert result["title"] == "CEO"
    assert result["email"] == "adele.vance@contoso.example"


def test_deactivating_a_user_locks_it_out_and_reactivating_unlocks(sn: Instance) -> None:
    path = f"/api/now/table/sys_user/{ADELE}"
    off = sn.call("PATCH", path, json={"active": False}).json()["result"]
    assert (off["active"], off["locked_out"]) == ("false", "true")
    on = sn.call("PATCH", path, json={"active": "true"}).json()["result"]
    assert (on["active"], on["locked_out"]) == ("true", "false")
    born_inactive = create_user(sn, user_name="gone@contoso.example", active="false")
    assert born_inactive["locked_out"] == "true"


def test_name_is_recomputed_from_its_parts(sn: Instance) -> None:
    path = f"/api/now/table/sys_user/{ADELE}"
    record = sn.call("PATCH", path, json={"first_name": "Adela", "name": "ignored"}).json()
    assert record["result"]["name"] == "Adela Vance"
    assert sn.call("PATCH", path, json={"middle_name": "Q"}).json()["result"]["name"] == (
        "Adela Q Vance"
    )


def test_duplicate_user_name_is_refused(sn: Instance) -> None:
    response = sn.call(
        "POST",
        "/api/now/table/sys_user",
        json={
            "user_name": "Adele.Vance@contoso.example",
            "first_name": "Other",
            "last_name": "One",
        },
    )
    assert error(response) == (
        403,
        "Operation Failed",
        "Error during insert of sys_user (Other One)",
    )
    renamed = sn.call(
        "PATCH",
        f"/api/now/table/sys_user/{ALEX}",
        json={"user_name": "adele.vance@contoso.example"},
    )
    assert error(renamed) == (
        403,
        "Operation Failed",
        "Error during update of sys_user (Alex Wilber)",
    )
    assert sn.app.write_count() == 0


def test_duplicate_group_membership_is_allowed(sn: Instance) -> None:
    body = {"user": ALEX, "group": SERVICE_DESK}
    assert sn.call("POST", "/api/now/table/sys_user_grmember", json=body).status_code == 201
    rows = sn.app.records("sys_user_grmember")
    assert sum(1 for row in rows if row["user"] == ALEX and row["group"] == SERVICE_DESK) == 2


def test_delete_answers_204_and_cascades(sn: Instance) -> None:
    response = sn.call("DELETE", f"/api/now/table/sys_user/{MEGAN}")
    assert response.status_code == 204
    assert response.content == b""
    assert sn.get(f"/api/now/table/sys_user/{MEGAN}").status_code == 404
    assert all(row["user"] != MEGAN for row in sn.app.records("sys_user_grmember"))
    alex = next(u for u in sn.app.records("sys_user") if u["sys_id"] == ALEX)
    assert alex["manager"] == ""


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_writes_to_unknown_sys_id_are_404(sn: Instance, method: str) -> None:
    response = sn.call(method, "/api/now/table/sys_user/" + "0" * 32, json={"title": "x"})
    assert error(response) == (
        404,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "The payload is not valid JSON."),
        (b"", "Empty request body"),
        (b"[1, 2]", "The payload is not a JSON object."),
    ],
)
def test_unreadable_body_is_400(sn: Instance, body: bytes, detail: str) -> None:
    # (A POST with no body at all inserts a record of defaults: test_sandbox_servicenow_table_api.)
    response = sn.call(
        "PATCH",
        f"/api/now/table/sys_user/{ADELE}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert error(response) == (400, "Exception while reading request", detail)


def test_form_encoded_body_is_415(sn: Instance) -> None:
    response = sn.call("POST", "/api/now/table/sys_user", data={"user_name": "x"})
    assert error(response)[0] == 415


# --- batch ----------------------------------------------------------------------------------


def _sub(request_id: str, method: str, url: str, body: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": request_id,
        "method": method,
        "url": url,
        "headers": [
            {"name": "Content-Type", "value": "application/json"},
            {"name": "Accept", "value": "application/json"},
        ],
    }
    if body is not None:
        item["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    return item


def _decoded(entry: dict[str, Any]) -> Any:
    raw = base64.b64decode(entry["body"])
    return json.loads(raw) if raw else None


def test_batch_mixes_successes_and_failures(sn: Instance) -> None:
    response = sn.call(
        "POST",
        "/api/now/v1/batch",
        json={
            "batch_request_id": 7,
            "rest_requests": [
                _sub("1", "GET", f"/api/now/table/sys_user/{ALEX}?sysparm_fields=user_name"),
                _sub("2", "GET", "/api/now/table/sys_user/" + "0" * 32),
                _sub("3", "POST", "/api/now/table/sys_user", {"user_name": "b@contoso.example"}),
                _sub("4", "PATCH", f"/api/now/table/sys_user/{ADELE}", {"title": "Boss"}),
                _sub("5", "DELETE", f"/api/now/table/sys_user/{MEGAN}"),
                _sub(
                    "6",
                    "GET",
                    "/api/now/table/sys_user?sysparm_limit=2&sysparm_query=ORDERBYsys_id",
                ),
                _sub("7", "POST", "/api/now/v1/batch", {"rest_requests": []}),
            ],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["batch_request_id"] == "7"
    assert body["unserviced_requests"] == []
    entries = {entry["id"]: entry for entry in body["serviced_requests"]}
    statuses = {key: entry["status_code"] for key, entry in entries.items()}
    assert statuses == {"1": 200, "2": 404, "3": 201, "4": 200, "5": 204, "6": 200, "7": 400}
    assert _decoded(entries["1"]) == {"result": {"user_name": "alex.wilber@contoso.example"}}
    assert _decoded(entries["2"])["error"]["message"] == "No Record found"
    assert _decoded(entries["3"])["result"]["user_name"] == "b@contoso.example"
    assert _decoded(entries["5"]) is None
    headers = {h["name"]: h["value"] for h in entries["6"]["headers"]}
    assert headers["X-Total-Count"] == str(DEMO_USERS)
    assert headers["Content-Type"] == "application/json;charset=UTF-8"
    assert entries["1"]["status_text"] == "OK"
    assert sn.app.write_count() == 3


def test_batch_path_without_version_and_bad_envelope(sn: Instance) -> None:
    ok = sn.call("POST", "/api/now/batch", json={"batch_request_id": "a", "rest_requests": []})
    assert ok.json() == {
        "batch_request_id": "a",
        "serviced_requests": [],
        "unserviced_requests": [],
    }
    bad = sn.call("POST", "/api/now/v1/batch", json={"rest_requests": "nope"})
    assert error(bad)[:2] == (400, "Exception while reading request")


# --- authentication and authorisation ------------------------------------------------------

UNAUTHENTICATED = (401, "User Not Authenticated", "Required to provide Auth information")


@pytest.mark.parametrize(
    "auth", [None, ("snsync", "wrong"), ("nobody", DEMO_PASSWORD), ("snsync", "")]
)
def test_basic_auth_failures_are_401(sn: Instance, auth: Any) -> None:
    response = sn.get("/api/now/table/sys_user", auth=auth)
    assert error(response) == UNAUTHENTICATED
    assert "WWW-Authenticate" in response.headers


def test_oauth_password_grant_bearer_and_refresh(sn: Instance) -> None:
    token = _token(
        sn,
        grant_type="password",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        username="snsync",
        password=DEMO_PASSWORD,
    )
    assert token.keys() == {"access_token", "refresh_token", "scope", "token_type", "expires_in"}
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 1799
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    created = sn.call("POST", "/api/now/table/sys_user", auth=None, headers=bearer, json={})
    assert created.json()["result"]["sys_created_by"] == "snsync"
    sn.clock.now = START + timedelta(seconds=1800)
    assert error(sn.get("/api/now/table/sys_user", auth=None, headers=bearer)) == UNAUTHENTICATED
    refreshed = _token(
        sn,
        grant_type="refresh_token",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        refresh_token=token["refresh_token"],
    )
    again = {"Authorization": f"Bearer {refreshed['access_token']}"}
    assert sn.get("/api/now/table/sys_user", auth=None, headers=again).status_code == 200


def _token(sn: Instance, **form: str) -> dict[str, Any]:
    response = sn.call("POST", "/oauth_token.do", auth=None, data=form)
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


@pytest.mark.parametrize(
    "form",
    [
        {"username": "snsync", "password": "wrong"},
        {"username": "snsync", "password": DEMO_PASSWORD, "client_secret": "wrong"},
        {"username": "snsync", "password": DEMO_PASSWORD, "client_id": "other"},
        {"grant_type": "refresh_token", "refresh_token": "unknown"},
    ],
)
def test_oauth_bad_credentials_are_401(sn: Instance, form: dict[str, str]) -> None:
    data = {
        "grant_type": "password",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        **form,
    }
    response = sn.call("POST", "/oauth_token.do", auth=None, data=data)
    assert response.status_code == 401
    assert response.json() == {"error_description": "access_denied", "error": "server_error"}


def test_unknown_bearer_token_is_401(sn: Instance) -> None:
    response = sn.get("/api/now/table/sys_user", auth=None, headers={"Authorization": "Bearer x"})
    assert error(response) == UNAUTHENTICATED


def test_client_credentials_grant_acts_as_the_clients_user(sn: Instance) -> None:
    token = _token(
        sn,
        grant_type="client_credentials",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
    )
    assert "refresh_token" not in token
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    created = sn.call("POST", "/api/now/table/sys_user", auth=None, headers=bearer, json={})
    assert created.json()["result"]["sys_created_by"] == "snsync"


def test_locked_out_account_cannot_log_in(sn: Instance) -> None:
    auditor = demo_sys_id("sys_user", "auditor")
    assert sn.get("/api/now/table/sys_user", auth=AUDITOR).status_code == 200
    sn.call("PATCH", f"/api/now/table/sys_user/{auditor}", json={"active": "false"})
    assert error(sn.get("/api/now/table/sys_user", auth=AUDITOR)) == UNAUTHENTICATED


@pytest.mark.parametrize(
    ("auth", "method", "path", "operation"),
    [
        (AUDITOR, "POST", "/api/now/table/sys_user", "Insert"),
        (AUDITOR, "PATCH", f"/api/now/table/sys_user/{ADELE}", "Update"),
        (AUDITOR, "PUT", f"/api/now/table/sys_user/{ADELE}", "Update"),
        (AUDITOR, "DELETE", f"/api/now/table/sys_user/{ADELE}", "Delete"),
        (AUDITOR, "GET", "/api/now/table/sys_user_role", "Read"),
        (AUDITOR, "GET", "/api/now/stats/sys_user_has_role", "Read"),
        (SNSYNC, "POST", "/api/now/table/cmn_department", "Insert"),
        (SNSYNC, "DELETE", f"/api/now/table/cmn_department/{SALES}", "Delete"),
    ],
)
def test_missing_role_is_403(
    sn: Instance, auth: Any, method: str, path: str, operation: str
) -> None:
    response = sn.call(method, path, auth=auth, json={"title": "x"})
    assert error(response) == (
        403,
        "Operation Failed",
        f"ACL Exception {operation} Failed due to security constraints",
    )
    assert sn.app.write_count() == 0


@pytest.mark.parametrize(
    ("auth", "path"),
    [
        (AUDITOR, "/api/now/table/sys_user"),
        (AUDITOR, "/api/now/table/sys_user_grmember"),
        (AUDITOR, "/api/now/table/cmn_location"),
        (SNSYNC, "/api/now/table/cmn_department"),
        (SNSYNC, "/api/now/table/sys_user_has_role"),
        (ADMIN, "/api/now/table/sys_user_role"),
    ],
)
def test_roles_that_may_read(sn: Instance, auth: Any, path: str) -> None:
    assert sn.get(path, auth=auth).status_code == 200


def test_admin_may_write_reference_data(sn: Instance) -> None:
    response = sn.call("POST", "/api/now/table/cmn_department", auth=ADMIN, json={"name": "Legal"})
    assert response.status_code == 201


# --- limits and faults ----------------------------------------------------------------------


def test_rate_limit_per_account_per_hour(start: Any) -> None:
    sn: Instance = start(rate_limit_per_hour=3)
    for _ in range(3):
        assert sn.get("/api/now/table/sys_user").status_code == 200
    refused = sn.get("/api/now/table/sys_user")
    assert error(refused)[:2] == (429, "Rate limit exceeded")
    window_end = START.replace(minute=0, second=0) + timedelta(hours=1)
    assert refused.headers["Retry-After"] == str(int((window_end - START).total_seconds()))
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Reset"] == str(int(window_end.timestamp()))
    assert sn.get("/api/now/table/sys_user", auth=ADMIN).status_code == 200  # per account
    sn.clock.now = window_end
    assert sn.get("/api/now/table/sys_user").status_code == 200


def test_rate_limit_counts_batch_sub_requests(start: Any) -> None:
    sn: Instance = start(rate_limit_per_hour=3)
    items = [_sub(str(n), "GET", f"/api/now/table/sys_user/{ADELE}") for n in range(5)]
    body = sn.call("POST", "/api/now/v1/batch", json={"rest_requests": items}).json()
    assert [entry["id"] for entry in body["serviced_requests"]] == ["0", "1", "2"]
    assert body["unserviced_requests"] == ["3", "4"]
    again = sn.call("POST", "/api/now/v1/batch", json={"rest_requests": items[:1]})
    assert again.status_code == 429


def test_concurrency_cap_queues_excess_requests(start: Any) -> None:
    sn: Instance = start(max_concurrent=2)
    sn.app.set_concurrency_latency(100)
    began = time.monotonic()

    def one(_: int) -> int:
        response = requests.get(
            sn.base_url + "/api/now/table/sys_user", auth=SNSYNC, verify=sn.ca, timeout=10
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(one, range(6)))
    assert statuses == [200] * 6
    assert sn.app.peak_concurrency() == 2
    assert time.monotonic() - began >= 0.29  # six requests, two at a time, 100 ms each


def test_without_a_cap_requests_overlap(start: Any) -> None:
    sn: Instance = start()
    sn.app.set_concurrency_latency(100)
    barrier = threading.Barrier(4)

    def one(_: int) -> int:
        barrier.wait()
        response = requests.get(
            sn.base_url + "/api/now/table/sys_user", auth=SNSYNC, verify=sn.ca, timeout=10
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(one, range(4))) == [200] * 4
    assert sn.app.peak_concurrency() > 2


def test_batch_takes_one_slot_but_pays_latency_per_sub_request(start: Any) -> None:
    sn: Instance = start(max_concurrent=1)
    sn.app.set_concurrency_latency(50)
    items = [_sub(str(n), "GET", f"/api/now/table/sys_user/{ADELE}") for n in range(4)]
    began = time.monotonic()
    assert sn.call("POST", "/api/now/v1/batch", json={"rest_requests": items}).status_code == 200
    assert time.monotonic() - began >= 0.19
    assert sn.app.peak_concurrency() == 1


@pytest.mark.parametrize("kind", ["429", "503"])
def test_injected_faults_look_like_the_service(sn: Instance, kind: str) -> None:
    sn.server.faults = FaultPlan(rate=1.0, kinds=(kind,), retry_after=7)
    response = sn.get("/api/now/table/sys_user")
    assert response.status_code == int(kind)
    assert response.headers["Retry-After"] == "7"
    if kind == "429":
        assert error(response)[:2] == (429, "Rate limit exceeded")
    else:
        assert response.headers["Content-Type"].startswith("text/html")
        assert "Service Unavailable" in response.text


# --- fixtures -------------------------------------------------------------------------------


def _with(change: Any) -> dict[str, Any]:
    fixture = demo_instance()
    change(fixture)
    return fixture


def _user(fixture: dict[str, Any], index: int) -> dict[str, Any]:
    user: dict[str, Any] = fixture["tables"]["sys_user"][index]
    return user


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: _user(f, 3).update(sys_id="ABC"),
            "instance fixture: tables.sys_user[3].sys_id: must be 32 lowercase hex characters",
        ),
        (
            lambda f: _user(f, 2).update(usr_name="typo"),
            "instance fixture: tables.sys_user[2].usr_name: sys_user has no such field",
        ),
        (
            lambda f: _user(f, 4).update(department="Research"),
            "instance fixture: tables.sys_user[4].department: "
            "no cmn_department record with sys_id or name 'Research'",
        ),
        (
            lambda f: _user(f, 5).update(user_name="admin"),
            "instance fixture: tables.sys_user[5].user_name: duplicate user_name 'admin'",
        ),
        (
            lambda f: _user(f, 1).update(active="maybe"),
            "instance fixture: tables.sys_user[1].active: must be true or false",
        ),
        (
            lambda f: _user(f, 1).update(sys_created_on="yesterday"),
            "instance fixture: tables.sys_user[1].sys_created_on: "
            "must be a date-time 'YYYY-MM-DD HH:MM:SS' (UTC)",
        ),
        (
            lambda f: _user(f, 1).update(name="Someone Else"),
            "instance fixture: tables.sys_user[1].name: "
            "calculated from first_name, middle_name, last_name",
        ),
        (
            lambda f: _user(f, 1).update(title={"value": "x"}),
            "instance fixture: tables.sys_user[1].title: must be a string, number, boolean or null",
        ),
        (
            lambda f: f["tables"]["sys_user"].append(dict(_user(f, 0))),
            f"instance fixture: tables.sys_user[8].sys_id: duplicate sys_id {ADMIN_SYS_ID}",
        ),
        (
            lambda f: f["accounts"][1].pop("password"),
            "instance fixture: accounts[1].password: must be a non-empty string",
        ),
        (
            lambda f: f["accounts"][0].update(roles="admin"),
            "instance fixture: accounts[0].roles: must be a list of role names",
        ),
        (
            lambda f: f["oauth_clients"][0].update(user_name="ghost"),
            "instance fixture: oauth_clients[0].user_name: no account named 'ghost'",
        ),
        (
            lambda f: f["tables"].update(sys_user={}),
            "instance fixture: tables.sys_user: must be a list of records",
        ),
        (
            lambda f: f["tables"].update({"Bad-Name": []}),
            "instance fixture: tables.Bad-Name: table names are lowercase letters, digits and _",
        ),
        (
            lambda f: f.update(extra=1),
            "instance fixture: extra: unknown key "
            "(expected accounts, oauth_clients, tables, columns, read_rules)",
        ),
        (
            lambda f: f["tables"]["sys_user_grmember"].append("member"),
            "instance fixture: tables.sys_user_grmember[4]: must be an object",
        ),
    ],
)
def test_fixture_problems_are_one_line_errors(change: Any, message: str) -> None:
    with pytest.raises(FixtureError) as raised:
        ServiceNowApp(_with(change))
    assert str(raised.value) == message


def test_fixture_fills_system_fields_and_resolves_names() -> None:
    app = ServiceNowApp(
        {
            "tables": {
                "cmn_department": [{"name": "Ops"}],
                "sys_user": [{"user_name": "u", "department": "Ops", "active": False}],
            }
        },
        clock=Clock(),
    )
    (user,) = app.records("sys_user")
    (ops,) = app.records("cmn_department")
    assert user["department"] == ops["sys_id"]
    assert len(user["sys_id"]) == SYS_ID_LENGTH
    assert user["sys_created_on"] == "2025-03-04 10:15:00"
    assert (user["sys_created_by"], user["sys_mod_count"], user["locked_out"]) == (
        "admin",
        "0",
        "true",
    )


def test_records_are_copies_and_unknown_tables_raise() -> None:
    app = ServiceNowApp(demo_instance())
    app.records("sys_user")[0]["user_name"] = "changed"
    assert app.records("sys_user")[0]["user_name"] == "admin"
    with pytest.raises(KeyError):
        app.records("no_such_table")


def test_load_instance_file_reports_where_json_breaks(tmp_path: Path) -> None:
    broken = tmp_path / "instance.json"
    broken.write_text('{"accounts": [\n  {"user_name": "a",}\n]}')
    with pytest.raises(FixtureError, match=r"instance\.json: invalid JSON at line 2 column 21"):
        load_instance_file(broken)
    with pytest.raises(FixtureError, match="cannot read"):
        load_instance_file(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(demo_instance()))
    assert ServiceNowApp(load_instance_file(good)).records("sys_user")


# --- ServiceNow's own Python client, unchanged ----------------------------------------------


@pytest.fixture
def client(sn: Instance, monkeypatch: pytest.MonkeyPatch) -> ServiceNowClient:
    """pysnc as shipped; it lets REQUESTS_CA_BUNDLE win over verify=, so point that at our CA."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sn.ca)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return ServiceNowClient(sn.base_url, SNSYNC, verify=sn.ca)


def test_pysnc_query_pages_and_counts(client: ServiceNowClient, sn: Instance) -> None:
    gr = client.GlideRecord("sys_user", batch_size=2)
    gr.add_query("active", "true")
    gr.add_encoded_query("emailLIKEcontoso")
    gr.query()
    assert gr.get_row_count() == 6
    seen = [(record.user_name.get_value(), record.get_display_value("department")) for record in gr]
    assert len(seen) == 6
    assert ("alex.wilber@contoso.example", "Marketing") in seen
    assert sn.server.stats.by_method["GET"] == 3  # three pages of two


def test_pysnc_order_and_or_conditions(client: ServiceNowClient) -> None:
    gr = client.GlideRecord("sys_user")
    condition = gr.add_query("user_name", "STARTSWITH", "adele")
    condition.add_or_condition("user_name", "STARTSWITH", "megan")
    gr.order_by_desc("user_name")
    gr.query()
    assert [record.user_name.get_value() for record in gr] == [
        "megan.bowen@contoso.example",
        "adele.vance@contoso.example",
    ]


def test_pysnc_get_insert_update_delete(client: ServiceNowClient, sn: Instance) -> None:
    gr = client.GlideRecord("sys_user")
    assert gr.get(ALEX)
    assert gr.manager.get_display_value() == "Megan Bowen"
    assert gr.get_value("manager") == MEGAN
    missing = client.GlideRecord("sys_user")
    assert not missing.get("0" * 32)

    new = client.GlideRecord("sys_user")
    new.initialize()
    new.user_name = "lynne.robbins@contoso.example"
    new.first_name = "Lynne"
    new.last_name = "Robbins"
    new.department = SALES
    sys_id = new.insert()
    assert sys_id is not None and len(str(sys_id)) == SYS_ID_LENGTH
    assert new.get_value("name") == "Lynne Robbins"
    assert new.get_display_value("department") == "Sales"

    found = client.GlideRecord("sys_user")
    assert found.get("user_name", "lynne.robbins@contoso.example")
    found.active = "false"
    assert found.update() == sys_id
    assert found.get_value("locked_out") == "true"
    assert found.get_value("sys_mod_count") == "1"

    assert found.delete()
    assert all(row["sys_id"] != str(sys_id) for row in sn.app.records("sys_user"))


def test_pysnc_update_and_delete_multiple_use_the_batch_api(
    client: ServiceNowClient, sn: Instance
) -> None:
    members = client.GlideRecord("sys_user_grmember")
    members.add_query("group.name", "Service Desk")
    members.query()
    assert members.get_row_count() == 2
    for member in members:
        member.group = demo_sys_id("sys_user_group", "CAB Approval")
    assert members.update_multiple()
    groups = {row["group"] for row in sn.app.records("sys_user_grmember")}
    assert groups == {demo_sys_id("sys_user_group", "CAB Approval")}

    doomed = client.GlideRecord("sys_user_grmember")
    doomed.add_query("user.user_name", "STARTSWITH", "a")
    assert doomed.delete_multiple()
    assert len(sn.app.records("sys_user_grmember")) == 2
    assert sn.server.stats.by_method["POST"] == 2  # two batch calls, no single deletes


def test_pysnc_without_the_role_raises(sn: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sn.ca)
    auditor = ServiceNowClient(sn.base_url, AUDITOR, verify=sn.ca)
    gr = auditor.GlideRecord("sys_user")
    gr.initialize()
    gr.user_name = "nope"
    with pytest.raises(RoleException):
        gr.insert()


def test_pysnc_client_credentials_flow(sn: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sn.ca)
    flow = ServiceNowClientCredentialsFlow(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    oauth_client = ServiceNowClient(sn.base_url, flow, verify=sn.ca)
    gr = oauth_client.GlideRecord("cmn_department")
    gr.query()
    assert gr.get_row_count() == 6
