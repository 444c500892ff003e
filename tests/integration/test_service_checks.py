"""What only the services can tell: excluded roles that are no app role, reference tables and
mapped fields that do not exist (test-connection fails the check, run and plan exit 2 naming the
key, nothing written); every test-connection check runs after a failure; an HTML 200 is not the
Table API; a 503 is asked again; `reset --links` declined changes nothing and exits 0."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.tls import create_tls

from .conftest import ServiceNowAdmin, Snsync

DEFAULT_USERS = [
    {"target": "user_name", "source": "userPrincipalName", "matching": True},
    {"target": "first_name", "source": "givenName"},
]


def checks(snsync: Snsync) -> dict[str, dict[str, Any]]:
    result = snsync("test-connection", "--output", "json")
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def refused(snsync: Snsync, sandbox: RunningSandbox, *fragments: str) -> None:
    for command in (["plan"], ["run", "--once"]):
        result = snsync(*command)
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert all(f in line for f in fragments), line
    assert sandbox.servicenow_app.write_count() == 0


def test_excluded_role_typo(snsync: Snsync, sandbox: RunningSandbox) -> None:
    snsync.reconfigure(scope={"excluded_app_roles": ["Default Access", "Aproover"]})
    check = checks(snsync)["excluded app roles"]
    assert not check["ok"] and "scope.excluded_app_roles[1]: 'Aproover'" in check["detail"]
    refused(snsync, sandbox, "scope.excluded_app_roles[1]", "'Aproover'", "its roles:")


def test_custom_reference_table_that_does_not_exist(
    snsync: Snsync, sandbox: RunningSandbox
) -> None:
    users = [
        *DEFAULT_USERS,
        {"target": "department", "source": "department", "reference": "u_departmnt"},
    ]
    snsync.reconfigure(mappings={"users": users})
    check = checks(snsync)["reference tables"]
    assert not check["ok"] and "mappings.users[2].reference" in check["detail"]
    refused(snsync, sandbox, "mappings.users[2].reference", "'u_departmnt'")


def test_mapped_field_typo_in_groups(snsync: Snsync, sandbox: RunningSandbox) -> None:
    groups = [
        {"target": "name", "source": "displayName", "matching": True},
        {"target": "descripton", "source": "description"},
    ]
    snsync.reconfigure(mappings={"users": DEFAULT_USERS, "groups": groups})
    assert not checks(snsync)["mapped fields"]["ok"]
    refused(snsync, sandbox, "mappings.groups[1].target", "'descripton'", "sys_user_group")


def test_valid_config_is_checked_once_then_remembered(
    snsync: Snsync, sandbox: RunningSandbox
) -> None:
    snsync.reconfigure(scope={"excluded_app_roles": ["Admin"]})
    assert all(c["ok"] for c in checks(snsync).values())
    assert snsync("run", "--once").exit_code in (0, 1)
    before = sandbox.graph.stats.requests
    snsync("run", "--once")
    again = sandbox.graph.stats.requests - before
    snsync.reconfigure(scope={"excluded_app_roles": ["Admin", "Nope"]})
    assert snsync("run", "--once").exit_code == 2, "a changed config is checked again"
    assert again <= 6, "an unchanged config is not checked again"


def test_every_check_runs_after_a_graph_failure(snsync: Snsync, sandbox: RunningSandbox) -> None:
    (sandbox.directory / "graph-client-secret.txt").write_text("wrong")
    found = checks(snsync)
    assert not found["graph token"]["ok"]
    assert found["service principal"]["skipped"] and found["read users"]["skipped"]
    assert found["servicenow login"]["ok"] and found["write access"]["ok"]
    text = snsync("test-connection").stdout
    assert "[skip] read users: not run: needs the 'graph token' check to pass" in text


def test_read_users_still_checked_when_the_service_principal_is_missing(snsync: Snsync) -> None:
    snsync.reconfigure(graph={"app_id": "11111111-2222-3333-4444-555555555555"})
    found = checks(snsync)
    assert not found["service principal"]["ok"] and not found["service principal"]["skipped"]
    assert found["read assignments"]["skipped"] and found["read users"]["ok"]


class _Scripted(BaseHTTPRequestHandler):
    answers: list[tuple[int, str, str]] = []
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status, kind, body = self.answers[min(len(self.seen), len(self.answers)) - 1]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[str, Path, type[_Scripted]]]:
    tls = create_tls(tmp_path / "stub-tls")
    handler = type("Handler", (_Scripted,), {"answers": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", tls.ca_pem, handler
    server.shutdown()
    server.server_close()


HTML = "text/html;charset=UTF-8"
PAGE = "<html><body><h1>Your instance is hibernating</h1></body></html>"


def test_an_html_page_with_200_is_not_the_table_api(snsync: Snsync, scripted: Any) -> None:
    url, ca, handler = scripted
    handler.answers.append((200, HTML, PAGE))
    snsync.reconfigure(servicenow={"instance": url, "ca_bundle": str(ca)})
    found = checks(snsync)["servicenow reachable"]
    assert not found["ok"] and "with a web page, not the Table API" in found["detail"]


def test_a_503_is_asked_again_before_judging(snsync: Snsync, scripted: Any) -> None:
    url, ca, handler = scripted
    unauthorized = json.dumps({"error": {"message": "User Not Authenticated"}, "status": "failure"})
    handler.answers += [(503, HTML, PAGE), (401, "application/json", unauthorized)]
    snsync.reconfigure(servicenow={"instance": url, "ca_bundle": str(ca)})
    found = checks(snsync)
    assert found["servicenow reachable"]["ok"], found["servicenow reachable"]
    assert not found["servicenow login"]["ok"]
    assert handler.seen[0].startswith("/api/now/table/sys_user") and len(handler.seen) >= 2


def test_reset_links_declined_changes_nothing_and_exits_0(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    assert snsync("run", "--once").exit_code in (0, 1)
    links = snsync.json("status")["links"]
    from click.testing import CliRunner

    from snsync.cli import cli

    result = CliRunner().invoke(
        cli, ["--config", str(snsync.config_path), "reset", "--links"], input="n\n"
    )
    assert result.exit_code == 0 and "Nothing changed." in result.stdout
    assert snsync.json("status")["links"] == links
