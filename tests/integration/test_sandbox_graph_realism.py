"""The Graph sandbox as the real service behaves under size and load (issue 14): delta pages at
the service's own size, large groups split across delta pages, `$expand` pages capped at 100,
resource-unit throttling with its headers, and the write bodies the Microsoft Graph SDK sends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from snsync.sandbox.demo_tenant import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    ROLE_USER_ID,
    demo_group_id,
    demo_tenant,
    demo_user_id,
)
from snsync.sandbox.graph import GraphApp, GraphOptions
from snsync.sandbox.graph_settings import graph_cli_options
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox
from snsync.sandbox.server import SandboxServer
from snsync.sandbox.tls import SandboxTls

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync
from .test_sandbox_graph import Clock, Graph, by_id, error_of, token_for

pytestmark = pytest.mark.integration

ALL_STAFF = demo_group_id("All Staff")
AGENTS = demo_group_id("ServiceNow Agents")
ADELE = demo_user_id("adele.vance")
ALEX = demo_user_id("alex.wilber")
LEE = demo_user_id("lee.gu")
BIG_GROUP = str(uuid.uuid5(uuid.NAMESPACE_URL, "snsync-test:big-group"))
EXTRA_USERS = 420  # 450 users in all
BIG_MEMBERS = 250


def extra_user_id(index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"snsync-test:user:{index}"))


def big_tenant() -> dict[str, Any]:
    """The demo tenant plus 420 users and an assigned group of 250 of them."""
    tenant = demo_tenant()
    for index in range(EXTRA_USERS):
        tenant["users"].append(
            {
                "id": extra_user_id(index),
                "userPrincipalName": f"bulk{index:03}@contoso.example",
                "displayName": f"Bulk User {index:03}",
                "manager": LEE,
            }
        )
    members = [extra_user_id(i) for i in range(BIG_MEMBERS)]
    tenant["groups"].append({"id": BIG_GROUP, "displayName": "Big Group", "members": members})
    tenant["assignments"].append({"principalId": BIG_GROUP, "appRoleId": ROLE_USER_ID})
    return tenant


@pytest.fixture(scope="module")
def server(sandbox_tls: SandboxTls) -> Iterator[SandboxServer]:
    sandbox = SandboxServer(GraphApp(demo_tenant()), sandbox_tls).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def connect(
    server: SandboxServer, sandbox_tls: SandboxTls, clock: Clock
) -> Callable[..., tuple[GraphApp, Graph]]:
    """Serve a fresh app (a tenant and options as keywords) and return it with a client."""

    def make(tenant: dict[str, Any] | None = None, **options: Any) -> tuple[GraphApp, Graph]:
        app = GraphApp(tenant or demo_tenant(), clock=clock, **options)
        server.app = app
        ca = str(sandbox_tls.ca_pem)
        token = token_for(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        return app, Graph(server.base_url, ca, token)

    return make


def pages(graph: Graph, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Each page's items, following nextLink to the end."""
    body = graph.ok(path, **params)
    found = [body["value"]]
    while "@odata.nextLink" in body:
        body = graph.ok(body["@odata.nextLink"])
        found.append(body["value"])
    assert "@odata.deltaLink" in body or "delta" not in path
    return found


# ---------------------------------------------------------------------------------------------
# Page sizes
# ---------------------------------------------------------------------------------------------


def test_users_delta_pages_at_the_service_size_whatever_top_asks(
    connect: Callable[..., tuple[GraphApp, Graph]],
) -> None:
    _, graph = connect(big_tenant())
    asked_small = pages(graph, "users/delta", **{"$select": "displayName", "$top": "5"})
    assert [len(page) for page in asked_small] == [200, 200, 50]
    prefer = {"Prefer": "odata.maxpagesize=999"}
    body = graph.call("GET", "users/delta", headers=prefer).json()
    assert len(body["value"]) == 200 and "@odata.nextLink" in body


def test_expand_caps_pages_at_100(connect: Callable[..., tuple[GraphApp, Graph]]) -> None:
    _, graph = connect(big_tenant())
    plain = pages(graph, "users", **{"$select": "id", "$top": "999"})
    assert [len(page) for page in plain] == [450]
    expanded = pages(
        graph, "users", **{"$select": "id", "$top": "999", "$expand": "manager($select=id)"}
    )
    assert [len(page) for page in expanded] == [100, 100, 100, 100, 50]
    assert expanded[4][-1]["manager"]["id"] == LEE


def test_large_group_members_come_split_across_delta_pages(
    connect: Callable[..., tuple[GraphApp, Graph]],
) -> None:
    _, graph = connect(big_tenant())
    body = graph.ok("groups/delta", **{"$select": "displayName,members"})
    found = [body["value"]]
    while "@odata.nextLink" in body:
        body = graph.ok(body["@odata.nextLink"])
        found.append(body["value"])
    items = [item for page in found for item in page]
    big = [item for item in items if item["id"] == BIG_GROUP]
    assert [len(item["members@delta"]) for item in big] == [100, 100, 50]
    assert all(item["displayName"] == "Big Group" for item in big)
    assert len({page_index for page_index, page in enumerate(found) for i in page if i in big}) > 1
    members = {m["id"] for item in big for m in item["members@delta"]}
    assert members == {extra_user_id(i) for i in range(BIG_MEMBERS)}
    others = [item for item in items if item["id"] != BIG_GROUP]
    assert len(others) == len({item["id"] for item in others}) == 4

    # The same split in a later round: 120 new members (20 a request, members@odata.bind).
    new = [extra_user_id(i) for i in range(BIG_MEMBERS, BIG_MEMBERS + 120)]
    for start in range(0, len(new), 20):
        binds = [f"{graph.base}/directoryObjects/{m}" for m in new[start : start + 20]]
        ok = graph.call("PATCH", f"groups/{BIG_GROUP}", json={"members@odata.bind": binds})
        assert ok.status_code == 204, ok.text
    changes = pages(graph, body["@odata.deltaLink"])
    repeated = [i for page in changes for i in page if i["id"] == BIG_GROUP]
    assert [len(item["members@delta"]) for item in repeated] == [100, 20]
    assert {m["id"] for item in repeated for m in item["members@delta"]} == set(new)


def test_first_round_may_list_removed_members(
    connect: Callable[..., tuple[GraphApp, Graph]],
) -> None:
    _, graph = connect()
    assert graph.call("DELETE", f"groups/{ALL_STAFF}/members/{ADELE}/$ref").status_code == 204
    groups = by_id(
        [i for page in pages(graph, "groups/delta", **{"$select": "members"}) for i in page]
    )
    staff = {m["id"]: m for m in groups[ALL_STAFF]["members@delta"]}
    assert staff[ADELE]["@removed"] == {"reason": "deleted"}
    assert sum("@removed" not in m for m in staff.values()) == 29


# ---------------------------------------------------------------------------------------------
# Resource-unit throttling
# ---------------------------------------------------------------------------------------------


def test_requests_cost_resource_units_as_graph_counts_them(
    connect: Callable[..., tuple[GraphApp, Graph]],
) -> None:
    _, graph = connect()
    costs = {
        "users": 2,
        "users?$select=id": 1,
        "users?$select=id&$expand=manager": 2,
        f"users/{ADELE}": 1,
        f"groups/{AGENTS}/members": 3,
        f"groups/{AGENTS}/transitiveMembers": 5,
        f"groups/{AGENTS}/transitiveMembers?$select=id": 4,
        "groups/delta?$select=members": 1,
    }
    for path, cost in costs.items():
        response = graph.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["x-ms-resource-unit"] == str(cost), path
        assert "x-ms-throttle-limit-percentage" not in response.headers  # far below 80 %


def test_spent_budget_is_429_with_retry_after_then_recovers(
    connect: Callable[..., tuple[GraphApp, Graph]], clock: Clock
) -> None:
    _, graph = connect(resource_units=10)
    first = graph.get(f"groups/{AGENTS}/transitiveMembers")  # 5 of 10
    assert graph.get(f"users/{ADELE}").status_code == 200  # 6 of 10
    assert "x-ms-throttle-limit-percentage" not in first.headers
    clock.advance(3)
    second = graph.get(f"groups/{AGENTS}/members")  # 9 of 10: past 80 %
    assert second.headers["x-ms-throttle-limit-percentage"] == "0.90"
    throttled = graph.get(f"groups/{AGENTS}/members")  # 12 > 10
    assert throttled.status_code == 429
    assert error_of(throttled)["code"] == "TooManyRequests"
    assert throttled.headers["Retry-After"] == "7"  # the first call ages out 10 s after it
    scope = throttled.headers["x-ms-throttle-scope"]
    assert scope == f"Tenant_Application/ReadWrite/{DEMO_CLIENT_ID}/{demo_tenant()['tenant_id']}"
    clock.advance(5)
    assert graph.get(f"groups/{AGENTS}/members").headers["Retry-After"] == "2"  # varies
    clock.advance(2)
    assert graph.get(f"groups/{AGENTS}/members").status_code == 200


def test_failed_requests_cost_nothing_and_batch_items_are_charged_one_by_one(
    connect: Callable[..., tuple[GraphApp, Graph]],
) -> None:
    _, graph = connect(resource_units=4)
    missing = f"users/{uuid.uuid4()}"
    for _ in range(6):
        assert graph.get(missing).status_code == 404
    requests_ = [{"id": str(i), "method": "GET", "url": f"/users/{ADELE}"} for i in range(6)]
    answer = graph.call("POST", "$batch", json={"requests": requests_})
    assert answer.status_code == 200
    statuses = [item["status"] for item in answer.json()["responses"]]
    assert statuses == [200, 200, 200, 200, 429, 429]
    throttled = answer.json()["responses"][4]["headers"]
    assert int(throttled["Retry-After"]) >= 1 and "x-ms-throttle-scope" in throttled


def test_throttling_can_be_switched_off(connect: Callable[..., tuple[GraphApp, Graph]]) -> None:
    _, graph = connect(resource_units=None)
    response = graph.get("users")
    assert response.status_code == 200 and "x-ms-resource-unit" not in response.headers


# ---------------------------------------------------------------------------------------------
# Write bodies as the Microsoft Graph SDK sends them
# ---------------------------------------------------------------------------------------------


def test_odata_type_in_write_bodies_is_accepted(
    connect: Callable[..., tuple[GraphApp, Graph]],
) -> None:
    _, graph = connect()
    user = {
        "@odata.type": "#microsoft.graph.user",
        "accountEnabled": True,
        "displayName": "Sdk User",
        "mailNickname": "sdk.user",
        "userPrincipalName": "sdk.user@contoso.example",
        "passwordProfile": {"password": "Sandbox-1234!"},
    }
    created = graph.call("POST", "users", json=user)
    assert created.status_code == 201, created.text
    patch = {"@odata.type": "#microsoft.graph.user", "jobTitle": "Tester"}
    assert graph.call("PATCH", f"users/{created.json()['id']}", json=patch).status_code == 204
    assert graph.ok(f"users/{created.json()['id']}", **{"$select": "jobTitle"})["jobTitle"] == (
        "Tester"
    )
    wrong = graph.call("PATCH", f"users/{ADELE}", json={"@odata.type": "#microsoft.graph.group"})
    assert wrong.status_code == 400 and error_of(wrong)["code"] == "BadRequest"


def test_post_group_with_members_odata_bind(
    connect: Callable[..., tuple[GraphApp, Graph]],
) -> None:
    _, graph = connect()
    latest = graph.ok("groups/delta", **{"$deltatoken": "latest", "$select": "displayName,members"})
    binds = [f"https://graph.microsoft.com/v1.0/directoryObjects/{m}" for m in (ADELE, ALEX)]
    body = {
        "@odata.type": "#microsoft.graph.group",
        "displayName": "Made By Sdk",
        "mailEnabled": False,
        "mailNickname": "madebysdk",
        "securityEnabled": True,
        "members@odata.bind": binds,
    }
    created = graph.call("POST", "groups", json=body)
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    members = graph.ok(f"groups/{group_id}/members", **{"$select": "id"})["value"]
    assert {m["id"] for m in members} == {ADELE, ALEX}
    change = by_id(graph.ok(latest["@odata.deltaLink"])["value"])[group_id]
    assert {m["id"] for m in change["members@delta"]} == {ADELE, ALEX}

    unknown = {**body, "members@odata.bind": [f"{graph.base}/directoryObjects/{uuid.uuid4()}"]}
    assert graph.call("POST", "groups", json=unknown).status_code == 404
    too_many = {**body, "members@odata.bind": [binds[0]] * 21}
    assert graph.call("POST", "groups", json=too_many).status_code == 400
    again = graph.call("PATCH", f"groups/{group_id}", json={"members@odata.bind": binds[:1]})
    assert again.status_code == 400 and "already exist" in error_of(again)["message"]


# ---------------------------------------------------------------------------------------------
# snsync against these behaviours (all on by default in `snsync sandbox`)
# ---------------------------------------------------------------------------------------------


def start(tmp_path: Path, tenant: dict[str, Any], **options: Any) -> RunningSandbox:
    tmp_path.mkdir(parents=True, exist_ok=True)
    tenant_file = tmp_path / "tenant.json"
    tenant_file.write_text(json.dumps(tenant), encoding="utf-8")
    return start_sandbox(
        SandboxOptions(tenant=tenant_file, directory=tmp_path / "sandbox", retry_after=0, **options)
    )


def sn_members(sn_admin: ServiceNowAdmin, group_name: str) -> set[str]:
    """user_name of every member row of a ServiceNow group."""
    group = sn_admin.one("sys_user_group", f"name={group_name}")
    names = {u["sys_id"]: u["user_name"] for u in sn_admin.rows("sys_user")}
    rows = sn_admin.rows("sys_user_grmember", f"group={group['sys_id']}")
    return {names[row["user"]] for row in rows}


def test_snsync_keeps_a_large_group_split_across_delta_pages(tmp_path: Path) -> None:
    running = start(tmp_path, big_tenant())
    try:
        snsync, admin = Snsync(running, running.config_path), GraphAdmin(running)
        sn_admin = ServiceNowAdmin(running)
        assert snsync("run", "--once").exit_code == 0
        assert len(sn_members(sn_admin, "Big Group")) == BIG_MEMBERS
        added = [extra_user_id(i) for i in range(BIG_MEMBERS, BIG_MEMBERS + 120)]
        for start_at in range(0, len(added), 20):
            binds = [f"{admin.base}/directoryObjects/{m}" for m in added[start_at : start_at + 20]]
            admin.call("PATCH", f"groups/{BIG_GROUP}", {"members@odata.bind": binds})
        for index in range(3):
            admin.call("DELETE", f"groups/{BIG_GROUP}/members/{extra_user_id(index)}/$ref")
        result = snsync("run", "--once")
        assert result.exit_code == 0, result.output
        assert snsync.json("status")["cycles"][0]["kind"] == "incremental"
        expected = {f"bulk{i:03}@contoso.example" for i in range(3, BIG_MEMBERS + 120)}
        assert sn_members(sn_admin, "Big Group") == expected
    finally:
        running.stop()


def test_snsync_falls_back_to_full_on_410_gone_too(tmp_path: Path) -> None:
    running = start(tmp_path, demo_tenant(), delta_expired_status=410)
    try:
        snsync = Snsync(running, running.config_path)
        assert snsync("run", "--once").exit_code == 0
        running.graph_app.expire_delta_tokens()
        GraphAdmin(running).call("PATCH", f"users/{LEE}", {"jobTitle": "CTO"})
        assert snsync("run", "--once").exit_code == 0
        assert snsync.json("status")["cycles"][0]["kind"] == "full"
        assert ServiceNowAdmin(running).one("sys_user", "user_name=lee.gu@contoso.example")[
            "title"
        ] == ("CTO")
    finally:
        running.stop()


def test_sandbox_options_reach_the_graph_app(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    @click.command()
    @graph_cli_options
    def command(**graph: Any) -> None:
        seen.update(graph)

    args = ["--delta-link-lifetime", "60", "--delta-expired-status", "410"]
    result = CliRunner().invoke(command, [*args, "--graph-resource-units", "0"])
    assert result.exit_code == 0, result.output
    running = start(tmp_path, demo_tenant(), **seen)
    try:
        options = running.graph_app.options
        assert (options.delta_token_ttl_s, options.delta_expired_status) == (60, 410)
        assert options.resource_units is None
    finally:
        running.stop()
    defaults = start(tmp_path / "defaults", demo_tenant())
    try:
        assert defaults.graph_app.options == GraphOptions()
        assert GraphOptions().resource_units == 8000 and GraphOptions().delta_page_size == 200
    finally:
        defaults.stop()
    bad = CliRunner().invoke(command, ["--delta-expired-status", "404"])
    assert bad.exit_code == 2 and "404" in bad.output
