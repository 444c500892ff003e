"""Redact(): the value reaches ServiceNow and no other output or file (plan, run, logs, status in
text and JSON, the state file and its -wal, metrics, the problem mail, the -vv log file); a
change in it is still written, by a full and by an incremental cycle."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from snsync.mapping.defaults import DEFAULT_USER_MAPPINGS
from snsync.sandbox.demo_tenant import demo_user_id
from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.server import Request, Response

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync
from .test_operations import Inbox, fail_writes, inbox  # noqa: F401  (the SMTP fixture)

LEE = demo_user_id("lee.gu")
FIRST, SECOND, THIRD = "ZQ-SECRET-4417", "ZQ SECRET@9902", "ZQ-SECRET-3150"


def _written_text(request: Request) -> str:
    """A write's body as text, with the bodies of a Batch API request's sub-requests decoded."""
    text = request.body.decode("utf-8", "replace")
    if not request.path.rstrip("/").endswith("/batch"):
        return text
    subs = json.loads(text or "{}").get("rest_requests", [])
    return text + "".join(base64.b64decode(s.get("body") or "").decode() for s in subs)


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


def test_a_redacted_matching_value_adopts_without_being_shown(
    snsync: Snsync,
    graph_admin: GraphAdmin,
    sn_admin: ServiceNowAdmin,
    tmp_path: Path,
) -> None:
    """Matching through a Redact() field: a full cycle adopts the record it names (comparing
    digests), and `provision -vv` (whose look-up puts the value in a query) does not show it."""
    users = [dict(m) for m in DEFAULT_USER_MAPPINGS if m.get("target") != "employee_number"]
    users.append(
        {
            "target": "employee_number",
            "expression": "Redact([employeeId])",
            "matching": True,
            "precedence": 2,
        }
    )
    snsync.reconfigure(mappings={"users": users})
    patti = demo_user_id("patti.fernandez")
    graph_admin.call("PATCH", f"users/{LEE}", {"employeeId": FIRST}, ok=204)
    graph_admin.call("PATCH", f"users/{patti}", {"employeeId": SECOND}, ok=204)
    old = sn_admin.insert(
        "sys_user", {"user_name": "lgu.old", "employee_number": FIRST, "active": "true"}
    )
    log_file = tmp_path / "snsync.log"
    outputs = []
    for args in (
        ["-vv", "--log-file", str(log_file), "plan", "--output", "json"],
        ["-vv", "--log-file", str(log_file), "run", "--once"],
        ["-vv", "--log-file", str(log_file), "provision", "patti.fernandez@contoso.example"],
        ["logs", "--output", "json"],
    ):
        result = snsync(*args)
        outputs.append(result.output + result.stderr)
    adopted = sn_admin.one("sys_user", f"sys_id={old['sys_id']}")
    assert adopted["source"] == f"entra:{LEE}", "adopted through the redacted matching field"
    assert len(sn_admin.rows("sys_user", f"employee_number={FIRST}")) == 1, "no duplicate"
    assert (
        sn_admin.one("sys_user", "user_name=patti.fernandez@contoso.example")["employee_number"]
        == SECOND
    )
    everything = "\n".join(outputs) + log_file.read_text()
    for secret in (FIRST, SECOND):
        assert secret not in everything


def test_an_error_quoting_the_value_does_not_show_it(
    snsync: Snsync, sandbox: RunningSandbox, graph_admin: GraphAdmin
) -> None:
    """A ServiceNow that quotes the written value in its error (a unique-key violation does)."""
    redact_employee_ids(snsync, 25)
    graph_admin.call("PATCH", f"users/{LEE}", {"employeeId": FIRST}, ok=204)
    app = sandbox.servicenow_app
    original = app.handle

    def handle(request: Request) -> Response:
        # A Batch API request carries the create base64-encoded: refused as a whole, it is
        # sent again on its own (whether it is batched depends on the write schedule's timing).
        if request.method == "POST" and FIRST in _written_text(request):
            detail = f"Unique Key violation detected by database (Duplicate entry '{FIRST}')"
            return Response(400, {"error": {"message": detail, "detail": ""}, "status": "failure"})
        return original(request)

    app.handle = handle  # type: ignore[method-assign]
    snsync.reconfigure(notifications={"email": None})
    outputs = [
        snsync(*args) for args in (["run", "--once"], ["logs"], ["logs", "--output", "json"])
    ]
    assert outputs[0].exit_code == 1
    assert "Unique Key violation" in outputs[1].output
    everything = "\n".join(r.output + r.stderr for r in outputs)
    assert FIRST not in everything
    state = b"".join(
        p.read_bytes() for p in sandbox.directory.iterdir() if p.name.startswith("state.db")
    )
    assert FIRST.encode() not in state
