"""An incremental cycle's opening reads, batched (issue 11), through the sandbox: Graph's two delta
rounds, the service principal and its assignments in one `$batch`; ServiceNow's drift reads in
one Batch API request. A no-change cycle makes 4 requests (5 with more than 999 assignments),
and a lying batch answer (wrong or repeated ids, a link elsewhere, a garbage body, a 429 on one
part, an expired delta, another service principal, unserviced parts, hidden rows) changes
nothing a cycle reads: each such part is read again on its own, or the cycle fails as a single
read would, and nothing is sent elsewhere."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from snsync.sandbox.demo_instance import demo_instance
from snsync.sandbox.demo_tenant import ROLE_MSIAM_ACCESS_ID, demo_tenant, demo_user_id
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox
from snsync.sandbox.server import Request, Response, SandboxServer

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync
from .test_bounds import Recorder, elsewhere  # noqa: F401 (the fixture)

Edit = Callable[[dict[str, Any]], None]
LEE = "lee.gu@contoso.example"


@dataclass
class Wire:
    """What the sandbox was asked, and a hook editing each batch answer of one service."""

    seen: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)
    graph_edit: Edit | None = None
    servicenow_edit: Edit | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, service: str, method: str, path_end: str) -> int:
        return sum(
            1 for s, m, p, _ in self.seen if s == service and m == method and p.endswith(path_end)
        )

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()


def wire(sandbox: RunningSandbox) -> Wire:
    """Wrap both sandbox apps: record every request, pass batch answers through the edits."""
    log = Wire()
    for service, app in (("graph", sandbox.graph_app), ("sn", sandbox.servicenow_app)):
        original = app.handle

        def handle(request: Request, original: Any = original, service: str = service) -> Response:
            with log.lock:
                log.seen.append((service, request.method, request.path, dict(request.query)))
            response: Response = original(request)
            edit = log.graph_edit if service == "graph" else log.servicenow_edit
            if edit is None or not request.path.endswith("batch") or response.status != 200:
                return response
            body = response.body
            body = json.loads(body) if isinstance(body, bytes) else body
            edit(body)
            return Response(200, body, response.headers)

        app.handle = handle  # type: ignore[method-assign]
    return log


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The opening batch's sub-responses by part (users, groups, sp, assignments)."""
    return {str(r.get("id")): r for r in body.get("responses", [])}


def kind(snsync: Snsync) -> str:
    return str(snsync.json("status")["cycles"][0]["kind"])


def title(sn_admin: ServiceNowAdmin) -> str:
    return sn_admin.one("sys_user", f"user_name={LEE}")["title"]


@pytest.fixture
def synced(snsync: Snsync, sandbox: RunningSandbox) -> Wire:
    """A first (full) cycle done; the wire recording from then on."""
    assert snsync("run", "--once").exit_code == 0
    return wire(sandbox)


# A no-change cycle --------------------------------------------------------------------------


def test_a_no_change_cycle_makes_one_batch_on_each_side(snsync: Snsync, synced: Wire) -> None:
    result = snsync.json("run", "--once")
    assert kind(snsync) == "incremental"
    graph = [(m, p.rsplit("/", 1)[-1]) for s, m, p, _ in synced.seen if s == "graph"]
    assert sorted(graph) == [
        ("GET", "openid-configuration"),
        ("POST", "$batch"),
        ("POST", "token"),
    ]
    assert [(m, p) for s, m, p, _ in synced.seen if s == "sn"] == [("POST", "/api/now/v1/batch")]
    assert result["requests"]["graph_reads"] == 3
    assert (result["requests"]["servicenow_reads"], result["requests"]["servicenow_writes"]) == (
        1,
        0,
    )


@pytest.fixture
def many_assignments(tmp_path: Path) -> Iterator[RunningSandbox]:
    """The demo tenant plus 1,100 users assigned under msiam_access (which the config then
    leaves out of scope, so that they cost no ServiceNow write): 1,1xx assignments, 2 pages."""
    tenant = demo_tenant()
    for n in range(1100):
        user_id = f"00000000-0000-4000-8000-{n:012d}"
        tenant["users"].append(
            {
                "id": user_id,
                "displayName": f"Extra {n}",
                "userPrincipalName": f"extra{n}@contoso.example",
                "mailNickname": f"extra{n}",
                "accountEnabled": True,
            }
        )
        tenant["assignments"].append({"principalId": user_id, "appRoleId": ROLE_MSIAM_ACCESS_ID})
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(tenant))
    running = start_sandbox(
        SandboxOptions(directory=tmp_path / "sandbox", tenant=path, retry_after=0)
    )
    yield running
    running.stop()


def test_a_no_change_cycle_with_over_999_assignments_makes_at_most_10_requests(
    many_assignments: RunningSandbox,
) -> None:
    snsync = Snsync(many_assignments, many_assignments.config_path)
    snsync.reconfigure(scope={"excluded_app_roles": ["msiam_access"]})
    assert snsync("run", "--once").exit_code == 0
    log = wire(many_assignments)
    result = snsync.json("run", "--once")
    assert kind(snsync) == "incremental"
    requests_ = result["requests"]
    total = sum(requests_[k] for k in ("graph_reads", "servicenow_reads", "servicenow_writes"))
    # Graph: discovery, token, the $batch (first page of 999 assignments inside), the second
    # page of assignments; ServiceNow: the Batch API request.
    assert total == 5 and total <= 10, requests_
    assert log.count("graph", "GET", "/appRoleAssignedTo") == 1
    assert log.count("graph", "POST", "/$batch") == 1


# Graph: lying sub-responses -----------------------------------------------------------------


def change_lee(graph_admin: GraphAdmin) -> None:
    graph_admin.call("PATCH", f"users/{demo_user_id('lee.gu')}", {"jobTitle": "CTO"})


def swap_users_and_groups(body: dict[str, Any]) -> None:
    parts = by_id(body)
    parts["users"]["id"], parts["groups"]["id"] = "groups", "users"


def unknown_and_repeated_ids(body: dict[str, Any]) -> None:
    parts = by_id(body)
    parts["users"]["id"] = "someone-else"
    body["responses"].append(dict(parts["groups"]))  # the groups part answered twice


def garbage_bodies(body: dict[str, Any]) -> None:
    parts = by_id(body)
    parts["users"]["body"] = "<html><body>Service unavailable</body></html>"
    parts["groups"]["body"] = {"value": {"not": "a list"}, "@odata.deltaLink": "x"}
    del parts["sp"]["body"]


@pytest.mark.parametrize(
    "lie",
    [swap_users_and_groups, unknown_and_repeated_ids, garbage_bodies],
    ids=lambda f: f.__name__,
)
def test_a_lying_graph_batch_is_read_again_on_its_own(
    snsync: Snsync,
    synced: Wire,
    graph_admin: GraphAdmin,
    sn_admin: ServiceNowAdmin,
    lie: Edit,
) -> None:
    change_lee(graph_admin)
    synced.graph_edit = lie
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert kind(snsync) == "incremental"
    assert title(sn_admin) == "CTO", "the users round was read whole, from Graph itself"
    assert synced.count("graph", "GET", "/users/delta") == 1
    assert synced.count("graph", "GET", "/groups/delta") == 1
    synced.graph_edit = None
    synced.clear()
    assert snsync("run", "--once").exit_code == 0, "the delta links kept are the right ones"
    assert synced.count("graph", "GET", "/delta") == 0, "both came inside the batch again"


def test_a_next_link_elsewhere_in_a_sub_response_gets_no_token(
    snsync: Snsync,
    sandbox: RunningSandbox,
    synced: Wire,
    graph_admin: GraphAdmin,
    sn_admin: ServiceNowAdmin,
    elsewhere: tuple[SandboxServer, Recorder],  # noqa: F811
) -> None:
    server, recorder = elsewhere
    home = sandbox.info["graph_url"]

    def steal(body: dict[str, Any]) -> None:
        parts = by_id(body)
        users = parts["users"]["body"]
        users["@odata.nextLink"] = users.pop("@odata.deltaLink").replace(home, server.base_url)
        page = parts["assignments"]["body"]
        page["@odata.nextLink"] = f"{server.base_url}/v1.0/servicePrincipals/x/appRoleAssignedTo"

    change_lee(graph_admin)
    synced.graph_edit = steal
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert not recorder.requests, "nothing may be sent to another origin"
    assert title(sn_admin) == "CTO"
    assert synced.count("graph", "GET", "/users/delta") == 1
    assert synced.count("graph", "GET", "/appRoleAssignedTo") == 1


def test_a_throttled_part_alone_is_read_again(
    snsync: Snsync, synced: Wire, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin
) -> None:
    def throttle_users(body: dict[str, Any]) -> None:
        by_id(body)["users"].update(
            status=429, headers={"Retry-After": "0"}, body={"error": {"code": "TooManyRequests"}}
        )

    change_lee(graph_admin)
    synced.graph_edit = throttle_users
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert title(sn_admin) == "CTO"
    assert synced.count("graph", "GET", "/users/delta") == 1, "the throttled part, on its own"
    assert synced.count("graph", "GET", "/groups/delta") == 0
    assert synced.count("graph", "GET", "/appRoleAssignedTo") == 0
    assert synced.count("graph", "GET", "/servicePrincipals") == 0


@pytest.mark.parametrize("status", [400, 410])
def test_a_delta_expired_inside_the_batch_gives_a_full_cycle(tmp_path: Path, status: int) -> None:
    sandbox = start_sandbox(
        SandboxOptions(directory=tmp_path / "sandbox", retry_after=0, delta_expired_status=status)
    )
    try:
        snsync = Snsync(sandbox, sandbox.config_path)
        assert snsync("run", "--once").exit_code == 0
        log = wire(sandbox)
        sandbox.graph_app.expire_delta_tokens()
        GraphAdmin(sandbox).call("PATCH", f"users/{demo_user_id('lee.gu')}", {"jobTitle": "CTO"})
        result = snsync("run", "--once")
        assert result.exit_code == 0, result.output
        assert kind(snsync) == "full"
        assert "delta link expired" in result.stderr
        alone = [q for _, m, p, q in log.seen if p.endswith("/delta") and m == "GET"]
        assert all(q.get("$deltatoken") == "latest" for q in alone), "the expiry: in the batch"
        assert title(ServiceNowAdmin(sandbox)) == "CTO"
    finally:
        sandbox.stop()


def another_principal(body: dict[str, Any]) -> None:
    by_id(body)["sp"]["body"]["id"] = "11111111-2222-4333-8444-555555555555"


def principal_gone(body: dict[str, Any]) -> None:
    by_id(body)["sp"].update(status=404, body={"error": {"code": "Request_ResourceNotFound"}})


@pytest.mark.parametrize("lie", [another_principal, principal_gone], ids=lambda f: f.__name__)
def test_a_principal_that_is_not_the_remembered_one_is_looked_up_again(
    snsync: Snsync, synced: Wire, sn_admin: ServiceNowAdmin, lie: Edit
) -> None:
    synced.graph_edit = lie
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert kind(snsync) == "incremental"
    found = [q for s, m, p, q in synced.seen if p.endswith("/servicePrincipals")]
    assert len(found) == 1 and "appId eq" in found[0].get("$filter", ""), synced.seen
    assert synced.count("graph", "GET", "/appRoleAssignedTo") == 1
    assert json.loads(result.stdout)["results"] == [], "the same assignments: nothing to do"


def test_assignments_of_another_principal_are_read_again(
    snsync: Snsync, synced: Wire, sn_admin: ServiceNowAdmin
) -> None:
    def foreign_rows(body: dict[str, Any]) -> None:
        for row in by_id(body)["assignments"]["body"]["value"]:
            row["resourceId"] = "11111111-2222-4333-8444-555555555555"

    synced.graph_edit = foreign_rows
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert synced.count("graph", "GET", "/appRoleAssignedTo") == 1
    assert json.loads(result.stdout)["results"] == []


def test_a_forbidden_part_fails_with_the_words_of_a_single_read(
    snsync: Snsync, sandbox: RunningSandbox, synced: Wire, sn_admin: ServiceNowAdmin
) -> None:
    denied = {
        "error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}
    }

    def forbid(body: dict[str, Any]) -> None:
        by_id(body)["assignments"].update(status=403, body=denied)

    synced.graph_edit = forbid
    app = sandbox.graph_app
    inner = app.handle

    def also_alone(request: Request) -> Response:
        if request.method == "GET" and request.path.endswith("/appRoleAssignedTo"):
            return Response(403, denied)
        return inner(request)

    app.handle = also_alone  # type: ignore[method-assign]
    writes = sandbox.servicenow_app.write_count()
    result = snsync("run", "--once")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert "Grant the application permission Application.Read.All" in result.stderr
    assert sandbox.servicenow_app.write_count() == writes, "nothing was written"


def test_a_tampered_remembered_principal_id_goes_into_no_url(
    snsync: Snsync, sandbox: RunningSandbox, synced: Wire
) -> None:
    with sqlite3.connect(sandbox.directory / "state.db") as db:
        changed = db.execute(
            "UPDATE pic_meta SET value = ? WHERE key = 'service_principal'",
            (json.dumps("../../users/x"),),
        ).rowcount
    assert changed == 1
    assert snsync("run", "--once").exit_code == 0
    assert kind(snsync) == "incremental"
    assert not [p for _, _, p, _ in synced.seen if "users/x" in p]
    assert synced.count("graph", "GET", "/servicePrincipals") == 1, "looked up by appId"


# ServiceNow: lying sub-responses ------------------------------------------------------------


def drift_lee(sn_admin: ServiceNowAdmin) -> None:
    """A change by hand that the next (incremental) cycle must see and repair."""
    lee = sn_admin.one("sys_user", f"user_name={LEE}")
    sn_admin.update("sys_user", lee["sys_id"], {"title": "Changed by hand"})


def encoded(payload: bytes) -> str:
    return base64.b64encode(payload).decode()


def all_unserviced(body: dict[str, Any]) -> None:
    body["unserviced_requests"] = [s["id"] for s in body["serviced_requests"]]
    body["serviced_requests"] = []


def garbled(body: dict[str, Any]) -> None:
    first, second, third, *_ = body["serviced_requests"]
    first["body"] = "not base64 at all!"
    second["body"] = encoded(b"<html>hibernating</html>")
    second["headers"] = [{"name": "Content-Type", "value": "text/html"}]
    third["body"] = encoded(b'{"no": "result list"}')


def swapped_ids(body: dict[str, Any]) -> None:
    first, second, *_ = body["serviced_requests"]
    first["id"], second["id"] = second["id"], first["id"]


def throttled_one(body: dict[str, Any]) -> None:
    body["serviced_requests"][0].update(
        status_code=429, headers=[{"name": "Retry-After", "value": "0"}], body=""
    )


def refused_whole(body: dict[str, Any]) -> None:
    body.clear()  # no batch_request_id of its own, no serviced requests: nothing answered


@pytest.mark.parametrize(
    ("lie", "alone"),
    [
        (all_unserviced, 4 + 1),
        (garbled, 3 + 1),
        (swapped_ids, 2 + 1),
        (throttled_one, 1 + 1),
        (refused_whole, 4 + 1),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_a_lying_servicenow_batch_is_read_again_on_its_own(
    snsync: Snsync, synced: Wire, sn_admin: ServiceNowAdmin, lie: Edit, alone: int
) -> None:
    drift_lee(sn_admin)
    synced.clear()
    synced.servicenow_edit = lie
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert kind(snsync) == "incremental"
    # The parts read again on its own, and sys_user's second page (its first held a row).
    single = [p for s, m, p, _ in synced.seen if s == "sn" and m == "GET"]
    assert len(single) == alone, single
    assert title(sn_admin) == "Director of Engineering", "the change by hand was seen"


def test_html_in_the_batch_and_alone_is_one_clean_error(
    snsync: Snsync, sandbox: RunningSandbox, synced: Wire, sn_admin: ServiceNowAdmin
) -> None:
    def html(body: dict[str, Any]) -> None:
        for item in body["serviced_requests"]:
            item["headers"] = [{"name": "Content-Type", "value": "text/html"}]
            item["body"] = encoded(b"<html>Your instance is hibernating</html>")

    drift_lee(sn_admin)
    synced.servicenow_edit = html
    app = sandbox.servicenow_app
    inner = app.handle

    def hibernating(request: Request) -> Response:
        if request.method == "GET" and request.path.endswith("/table/sys_user"):
            return Response(
                200, b"<html>Your instance is hibernating</html>", {"Content-Type": "text/html"}
            )
        return inner(request)

    app.handle = hibernating  # type: ignore[method-assign]
    writes = sandbox.servicenow_app.write_count()
    result = snsync("run", "--once")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert "answered an HTML page" in result.stderr
    assert sandbox.servicenow_app.write_count() == writes, "nothing was written"


HIDDEN = [f"{n:032x}" for n in range(1, 6)]  # sort before every demo sys_id


def test_rows_hidden_by_read_rules_on_the_batched_page_are_stepped_past(tmp_path: Path) -> None:
    instance = demo_instance()
    for n, sys_id in enumerate(HIDDEN):
        instance["tables"]["sys_user"].append(
            {"sys_id": sys_id, "user_name": f"hidden{n}", "first_name": "Hidden"}
        )
    instance["read_rules"] = [{"table": "sys_user", "condition": "first_name!=Hidden"}]
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(instance))
    sandbox = start_sandbox(
        SandboxOptions(directory=tmp_path / "sandbox", instance=path, retry_after=0)
    )
    try:
        snsync = Snsync(sandbox, sandbox.config_path)
        snsync.reconfigure(servicenow={"page_size": 4})
        assert snsync("run", "--once").exit_code == 0
        sn = ServiceNowAdmin(sandbox)
        for sys_id in HIDDEN:  # changed by someone else, but the account may not read them
            sn.update("sys_user", sys_id, {"title": "hidden change"})
        drift_lee(sn)
        log = wire(sandbox)
        result = snsync("run", "--once")
        assert result.exit_code == 0, result.output
        assert kind(snsync) == "incremental"
        # The batched sys_user page (4 rows, all hidden) came back empty with X-Total-Count 6:
        # the read stepped past it on its own, and found the change by hand.
        stepped = [q for s, m, p, q in log.seen if p.endswith("/sys_user") and m == "GET"]
        assert stepped and stepped[0].get("sysparm_offset") == "4", stepped
        assert title(sn) == "Director of Engineering"
        assert all(r["title"] == "hidden change" for r in sn.rows("sys_user", "first_name=Hidden"))
    finally:
        sandbox.stop()


def test_the_batched_page_counts_against_max_pages(
    snsync: Snsync, sandbox: RunningSandbox, synced: Wire, sn_admin: ServiceNowAdmin
) -> None:
    snsync.reconfigure(limits={"max_pages": 1})
    drift_lee(sn_admin)  # the sys_user drift page holds a row: a second page must be asked for
    writes = sandbox.servicenow_app.write_count()
    result = snsync("run", "--once")
    assert result.exit_code == 3, result.output
    assert "more than limits.max_pages (1)" in result.stderr
    assert "Traceback" not in result.output
    assert sandbox.servicenow_app.write_count() == writes, "nothing was written"


def test_the_sandbox_answers_a_batched_get_with_its_paging_headers(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    """What the drift reads rely on, as a real instance answers it: a GET inside a batch keeps
    its X-Total-Count and its Link header, whose links name the sub-request's table."""

    url = (
        "/api/now/table/sys_user?sysparm_limit=2&sysparm_query=ORDERBYsys_id&sysparm_fields=sys_id"
    )
    payload = {
        "batch_request_id": "b1",
        "rest_requests": [{"id": "1", "method": "GET", "url": url, "headers": []}],
    }
    answer = requests.post(
        f"{sn_admin.base}/api/now/v1/batch",
        json=payload,
        auth=sn_admin.auth,
        verify=sn_admin.verify,
        timeout=10,
    ).json()
    (item,) = answer["serviced_requests"]
    headers = {h["name"]: h["value"] for h in item["headers"]}
    total = len(sn_admin.rows("sys_user"))
    assert headers["X-Total-Count"] == str(total)
    assert f"{sandbox.info['servicenow_url']}/api/now/table/sys_user?" in headers["Link"]
    assert 'rel="next"' in headers["Link"]
    assert len(json.loads(base64.b64decode(item["body"]))["result"]) == 2
