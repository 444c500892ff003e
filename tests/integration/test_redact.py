"""Redact(): the value reaches ServiceNow and no other output or file (plan, run, logs, status in
text and JSON, the state file and its -wal, metrics, the problem mail, the -vv log file); a
change in it is still written, by a full and by an incremental cycle."""

from __future__ import annotations

from pathlib import Path

from snsync.mapping.defaults import DEFAULT_USER_MAPPINGS
from snsync.sandbox.demo_tenant import demo_user_id
from snsync.sandbox.runner import RunningSandbox

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync
from .test_operations import Inbox, fail_writes, inbox  # noqa: F401  (the SMTP fixture)

LEE = demo_user_id("lee.gu")
FIRST, SECOND, THIRD = "ZQ-SECRET-4417", "ZQ-SECRET-9902", "ZQ-SECRET-3150"


def redact_employee_ids(snsync: Snsync, port: int) -> None:
    users = [dict(m) for m in DEFAULT_USER_MAPPINGS if m.get("target") != "employee_number"]
    users.append({"target": "employee_number", "expression": "Redact([employeeId])"})
    snsync.reconfigure(
        mappings={"users": users},
        notifications={
            "email": {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "sender": "snsync@contoso.example",
                "to": ["idm-team@contoso.example"],
            }
        },
    )


def test_a_redacted_value_reaches_servicenow_and_nothing_else(
    snsync: Snsync,
    sandbox: RunningSandbox,
    graph_admin: GraphAdmin,
    sn_admin: ServiceNowAdmin,
    inbox: tuple[Inbox, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    handler, port = inbox
    redact_employee_ids(snsync, port)
    graph_admin.call("PATCH", f"users/{LEE}", {"employeeId": FIRST}, ok=204)
    log_file, metrics = tmp_path / "snsync.log", tmp_path / "m.prom"
    outputs: list[str] = []

    def run(*args: str) -> int:
        result = snsync(*args)
        outputs.append(result.output + result.stderr)
        return result.exit_code

    verbose = ["-vv", "--log-file", str(log_file)]
    run(*verbose, "plan")
    run(*verbose, "plan", "--output", "json")
    assert run(*verbose, "run", "--once", "--metrics-file", str(metrics)) == 0
    assert sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")["employee_number"] == FIRST

    graph_admin.call("PATCH", f"users/{LEE}", {"employeeId": SECOND}, ok=204)
    run(*verbose, "plan")
    run(*verbose, "plan", "--output", "json")
    assert run(*verbose, "run", "--once", "--output", "json", "--metrics-file", str(metrics)) == 0
    assert snsync.json("status")["cycles"][0]["kind"] == "incremental"
    lee = sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")
    assert lee["employee_number"] == SECOND, "an incremental cycle saw the change"

    # Unchanged now: nothing to write (the digests agree), in an incremental cycle too.
    plan = snsync.json("plan")
    assert not [i for i in plan["items"] if i["display_name"] == "Lee Gu"]

    # Changed in ServiceNow by hand: the cached picture has only a digest of the directory's
    # value, so this incremental cycle writes nothing for it and the next (full) one repairs it.
    sn_admin.update("sys_user", lee["sys_id"], {"employee_number": "typed by hand"})
    result = snsync.json("run", "--once")
    reasons = [r["reason"] for r in result["results"] if r["display_name"] == "Lee Gu"]
    assert reasons == ["RedactedValueNotCached"]
    assert run(*verbose, "run", "--once") == 0
    assert snsync.json("status")["cycles"][0]["kind"] == "full"
    assert sn_admin.one("sys_user", f"sys_id={lee['sys_id']}")["employee_number"] == SECOND

    # A write that fails: the problem mail names Lee Gu, not the value.
    graph_admin.call("PATCH", f"users/{LEE}", {"employeeId": THIRD}, ok=204)
    fail_writes(sandbox)
    assert run(*verbose, "run", "--once", "--output", "json") == 1
    assert handler.messages and "Lee Gu" in handler.messages[-1]

    for args in (
        ["logs"],
        ["logs", "--output", "json"],
        ["logs", "--user", "lee.gu@contoso.example"],
        ["status"],
        ["status", "--output", "json"],
        ["run", "--once", "--dry-run", "--full"],
        ["run", "--once", "--dry-run", "--full", "--output", "json"],
    ):
        run(*args)
    assert any("[redacted]" in o for o in outputs)
    mails = "\n".join(handler.messages)
    files = b"".join(
        p.read_bytes() for p in sandbox.directory.iterdir() if p.name.startswith("state.db")
    )
    everything = "\n".join(outputs) + log_file.read_text() + metrics.read_text() + mails
    for secret in (FIRST, SECOND, THIRD):
        assert secret not in everything
        assert secret.encode() not in files
