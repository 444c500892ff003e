"""`snsync test-connection` for each failing check, and bad input of every kind: one line, a
documented exit code, no traceback, nothing half written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from snsync.sandbox.demo_tenant import demo_tenant
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox
from snsync.sandbox.tls import create_tls

from .conftest import ServiceNowAdmin, Snsync


def edit(snsync: Snsync, change: Any) -> None:
    data = yaml.safe_load(snsync.config_path.read_text())
    change(data)
    snsync.config_path.write_text(yaml.safe_dump(data))


def failed_check(snsync: Snsync) -> dict[str, Any]:
    result = snsync("test-connection", "--output", "json")
    assert result.exit_code == 3, result.output
    checks = json.loads(result.stdout)["checks"]
    return next(c for c in checks if not c["ok"])


def test_all_checks_pass_on_the_sandbox(snsync: Snsync) -> None:
    result = snsync("test-connection")
    assert result.exit_code == 0, result.output
    assert "All checks passed." in result.output


def test_wrong_graph_secret(snsync: Snsync, sandbox: RunningSandbox) -> None:
    (sandbox.directory / "graph-client-secret.txt").write_text("not-the-secret")
    check = failed_check(snsync)
    assert check["name"] == "graph token"
    assert "AADSTS7000215" in check["detail"] and "Value (not its Secret ID)" in check["detail"]
    assert "not-the-secret" not in snsync("test-connection").output


def test_unknown_tenant(snsync: Snsync) -> None:
    edit(snsync, lambda d: d["graph"].update(tenant_id="11111111-2222-3333-4444-555555555555"))
    check = failed_check(snsync)
    assert check["name"] == "graph token" and "graph.tenant_id" in check["detail"]


def test_unknown_client(snsync: Snsync) -> None:
    edit(snsync, lambda d: d["graph"].update(client_id="11111111-2222-3333-4444-555555555555"))
    check = failed_check(snsync)
    assert "AADSTS700016" in check["detail"] and "graph.client_id" in check["detail"]


def test_missing_graph_permission_is_named(tmp_path: Path) -> None:
    tenant = demo_tenant()
    tenant["clients"][0]["permissions"] = ["Application.Read.All", "GroupMember.Read.All"]
    fixture = tmp_path / "tenant.json"
    fixture.write_text(json.dumps(tenant))
    running = start_sandbox(SandboxOptions(tenant=fixture, directory=tmp_path / "sbx"))
    try:
        check = failed_check(Snsync(running, running.config_path))
    finally:
        running.stop()
    assert check["name"] == "read users" and "User.Read.All" in check["detail"]


def test_servicenow_unreachable(snsync: Snsync) -> None:
    edit(snsync, lambda d: d["servicenow"].update(instance="https://127.0.0.1:9"))
    check = failed_check(snsync)
    assert check["name"] == "servicenow reachable" and "connection refused" in check["detail"]


def test_servicenow_tls_with_wrong_ca(snsync: Snsync, tmp_path: Path) -> None:
    other = create_tls(tmp_path / "other-ca")
    edit(snsync, lambda d: d["servicenow"].update(ca_bundle=str(other.ca_pem)))
    check = failed_check(snsync)
    assert check["name"] == "servicenow reachable"
    assert "TLS" in check["detail"] and "servicenow.ca_bundle" in check["detail"]


def test_servicenow_instance_invalid(snsync: Snsync, sandbox: RunningSandbox) -> None:
    edit(snsync, lambda d: d["servicenow"].update(instance=sandbox.info["graph_url"]))
    check = failed_check(snsync)
    assert "ServiceNowInstanceInvalid" in check["detail"]


def test_servicenow_bad_password(snsync: Snsync, sandbox: RunningSandbox) -> None:
    (sandbox.directory / "servicenow-password.txt").write_text("wrong-password")
    check = failed_check(snsync)
    assert check["name"] == "servicenow login" and "401" in check["detail"]
    assert "check servicenow.auth" in check["detail"]


def test_servicenow_account_without_write_role(snsync: Snsync) -> None:
    edit(snsync, lambda d: d["servicenow"]["auth"].update(username="auditor"))
    check = failed_check(snsync)
    assert check["name"] == "write access" and "user_admin" in check["detail"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("graph: {tenant_id: x}\n", "graph.client_id: required key is missing"),
        ("graph: [\n", "line 2"),
        ("- just a list\n", "the top level must be a mapping"),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = Snsync(None, path)("validate")  # type: ignore[arg-type]
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and fragment in result.stderr
    assert "Traceback" not in result.output


def test_mistyped_mapping_target_stops_before_writing(
    snsync: Snsync, sn_admin: ServiceNowAdmin, sandbox: RunningSandbox
) -> None:
    snsync.reconfigure(
        mappings={
            "users": [
                {"target": "user_name", "source": "userPrincipalName", "matching": True},
                {"target": "job_titel", "source": "jobTitle"},
            ]
        }
    )
    result = snsync("run", "--once")
    assert result.exit_code == 2
    assert "mappings.users[1].target: 'job_titel' is not a field of sys_user" in result.stderr
    assert sandbox.servicenow_app.write_count() == 0


def test_expression_error_fails_one_object_only(snsync: Snsync, sn_admin: ServiceNowAdmin) -> None:
    failing = 'IIF([jobTitle]="IT Director", Item([businessPhones], 3), [jobTitle])'
    snsync.reconfigure(
        mappings={
            "users": [
                {"target": "user_name", "source": "userPrincipalName", "matching": True},
                {"target": "title", "expression": failing},
            ]
        }
    )
    result = snsync("run", "--once")
    assert result.exit_code == 1
    assert "Nestor Wilke" in result.output and "ExpressionEvaluationFailed" in result.output
    assert "mappings.users[1] (title): Item: index 3 is out of range" in result.output
    assert sn_admin.rows("sys_user", "user_name=nestor.wilke@contoso.example") == []
    assert sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")["title"] == (
        "Director of Engineering"
    )


def test_faults_are_retried_and_failures_isolated(tmp_path: Path) -> None:
    running = start_sandbox(
        SandboxOptions(directory=tmp_path / "sbx", fault_rate=0.2, seed=7, retry_after=0)
    )
    try:
        snsync = Snsync(running, running.config_path)
        result = snsync("run", "--once", "--output", "json")
        assert result.exit_code in (0, 1), result.output
        report = json.loads(result.stdout)
        assert report["requests"]["retries"] > 0
        assert running.servicenow.stats.faults > 0
        failures = [r for r in report["results"] if r["status"] == "Failure"]
        assert all(r["reason"] == "Transient" for r in failures)
        again = json.loads(snsync("run", "--once", "--output", "json").stdout)
        succeeded = {
            r["directory_id"]
            for r in report["results"] + again["results"]
            if r["action"] == "Create" and r["status"] in ("Success", "Warning")
        }
        assert len(succeeded) >= 10
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "tenant fixture"),
        ('{"tenant_id": "x"}', "tenant fixture"),
    ],
)
def test_bad_sandbox_fixture_is_one_line_exit_2(
    tmp_path: Path, content: str, fragment: str
) -> None:
    from click.testing import CliRunner

    from snsync.cli import cli

    fixture = tmp_path / "tenant.json"
    fixture.write_text(content)
    result = CliRunner().invoke(
        cli, ["sandbox", "--tenant", str(fixture), "--dir", str(tmp_path / "sbx")]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and fragment in result.stderr
    assert "Traceback" not in result.output
