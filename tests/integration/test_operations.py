"""Safety and operations end to end: the disable threshold, an incomplete source, quarantine,
mail through a real SMTP server, every exit code, metrics, and no secret in any output."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from snsync.sandbox.demo_instance import DEMO_PASSWORD
from snsync.sandbox.demo_tenant import DEMO_CLIENT_SECRET, demo_user_id
from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.server import Request, Response
from snsync.state import RunLock

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync

LEE, PATTI = demo_user_id("lee.gu"), demo_user_id("patti.fernandez")


class Inbox:
    """aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode("utf8", errors="replace"))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def fail_writes(sandbox: RunningSandbox) -> None:
    """Make ServiceNow refuse every write, as a broken ACL would."""
    app = sandbox.servicenow_app
    original = app.handle

    def handle(request: Request) -> Response:
        if request.method in ("POST", "PATCH", "PUT", "DELETE"):
            return Response(
                403,
                {
                    "error": {"message": "Operation Failed", "detail": "ACL Exception"},
                    "status": "failure",
                },
            )
        return original(request)

    app.handle = handle  # type: ignore[method-assign]


def test_threshold_holds_every_disable_then_approve_releases(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    snsync.reconfigure(safety={"max_disables": {"users": 1}})
    snsync("run", "--once")
    graph_admin.unassign(LEE)
    graph_admin.unassign(PATTI)
    held = snsync("run", "--once")
    assert held.exit_code == 4, held.output
    for upn in ("lee.gu", "patti.fernandez"):
        assert sn_admin.one("sys_user", f"user_name={upn}@contoso.example")["active"] == "true"
    staged = snsync.json("logs", "--action", "StagedDisable")
    assert {e["directory_id"] for e in staged} == {LEE, PATTI}
    assert all(e["reason"] == "DisableThresholdExceeded" for e in staged)
    assert "HELD: 2 user disables" in snsync("status").output
    released = snsync("approve")
    assert released.exit_code == 0, released.output
    assert sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")["active"] == "false"
    assert "HELD" not in snsync("status").output


def test_percentage_threshold(snsync: Snsync, graph_admin: GraphAdmin) -> None:
    snsync.reconfigure(safety={"max_disables": "5%"})
    snsync("run", "--once")
    graph_admin.unassign(LEE)
    assert snsync("run", "--once").exit_code == 4
    assert snsync("run", "--once", "--allow-disables").exit_code == 0


def test_a_failed_users_page_disables_nothing(
    snsync: Snsync, sn_admin: ServiceNowAdmin, sandbox: RunningSandbox
) -> None:
    snsync.reconfigure(graph={"page_size": 10})
    snsync("run", "--once")
    app = sandbox.graph_app
    original = app.handle

    def handle(request: Request) -> Response:
        if request.path == "/v1.0/users" and "skiptoken" in request.raw_path.lower():
            return app.fault_response(503, 0)
        return original(request)

    app.handle = handle  # type: ignore[method-assign]
    result = snsync("run", "--once", "--full", "--output", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert not [r for r in report["results"] if r["action"] == "Disable"]
    warned = [r for r in report["results"] if r["reason"] == "SourceIncomplete"]
    assert warned and "users: stopped after 10 items" in warned[0]["message"]
    assert all(
        r["active"] == "true"
        for r in sn_admin.rows("sys_user", "sourceSTARTSWITHentra:")
        if r["user_name"] != "irvin.sayers@contoso.example"
    )


def test_quarantine_entry_wait_and_clearing(
    snsync: Snsync, sandbox: RunningSandbox, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    snsync.reconfigure(
        safety={"quarantine": {"min_writes": 5, "failure_ratio": 0.4}},
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
    fail_writes(sandbox)
    first = snsync("run", "--once")
    assert first.exit_code == 1
    waiting = snsync("run", "--once")
    assert waiting.exit_code == 4
    assert "quarantined (level 1) until" in waiting.stderr
    assert "reset --quarantine" in waiting.stderr
    status = snsync.json("status")
    assert status["quarantine"]["level"] == 1
    assert any("[snsync]" in m and "quarantine" in m.lower() for m in handler.messages)
    assert snsync("reset", "--quarantine").exit_code == 0
    assert snsync.json("status")["quarantine"] is None


def test_failure_mail_is_sent_once_per_problem(
    snsync: Snsync,
    sandbox: RunningSandbox,
    sn_admin: ServiceNowAdmin,
    inbox: tuple[Inbox, int],
) -> None:
    handler, port = inbox
    for name in ("lee.gu.a", "lee.gu.b"):
        sn_admin.insert("sys_user", {"user_name": name, "email": "lee.gu@contoso.example"})
    snsync.reconfigure(
        mappings={
            "users": [
                {"target": "email", "source": "mail", "matching": True},
                {"target": "user_name", "source": "userPrincipalName"},
            ]
        },
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
    assert snsync("run", "--once").exit_code == 1
    assert len(handler.messages) == 1
    mail = handler.messages[0]
    assert "AmbiguousMatch" in mail and "Lee Gu" in mail and "logs --cycle 1" in mail
    assert snsync("run", "--once").exit_code == 1
    assert len(handler.messages) == 1, "the same problem is not mailed again within 24h"


def test_lock_held_exits_75(snsync: Snsync, sandbox: RunningSandbox) -> None:
    with RunLock(sandbox.directory / "state.db"):
        result = snsync("run", "--once")
    assert result.exit_code == 75
    assert "another snsync run holds" in result.stderr and "pid" in result.stderr


def test_metrics_file_parses_back(snsync: Snsync, tmp_path: Path) -> None:
    path = tmp_path / "snsync.prom"
    assert snsync("run", "--once", "--metrics-file", str(path)).exit_code == 0
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    assert samples[("snsync_last_cycle_success", ())] == 1.0
    assert (
        samples[
            (
                "snsync_objects",
                (("action", "Create"), ("object_type", "group"), ("status", "Success")),
            )
        ]
        == 2.0
    )
    assert samples[("snsync_last_success_timestamp_seconds", ())] > time.time() - 60


def test_no_secret_in_any_output(snsync: Snsync, sandbox: RunningSandbox, tmp_path: Path) -> None:
    log_file, metrics = tmp_path / "snsync.log", tmp_path / "m.prom"
    outputs = []
    for args in (
        ["-vv", "--log-file", str(log_file), "run", "--once", "--metrics-file", str(metrics)],
        ["-vv", "--log-format", "json", "--log-file", str(log_file), "plan", "--output", "json"],
        ["test-connection", "--output", "json"],
        ["status", "--output", "json"],
        ["logs", "--output", "json"],
        ["provision", "brian.johnson@contoso.example", "--dry-run"],
    ):
        result = snsync(*args)
        outputs.append(result.output + result.stderr)
    (sandbox.directory / "graph-client-secret.txt").write_text("wrong-secret-value")
    outputs.append(snsync("-vv", "run", "--once").output)
    state = (sandbox.directory / "state.db").read_bytes()
    everything = "\n".join(outputs) + log_file.read_text() + metrics.read_text()
    for secret in (DEMO_CLIENT_SECRET, DEMO_PASSWORD, "wrong-secret-value"):
        assert secret not in everything
        assert secret.encode() not in state
    assert "Bearer ey" not in everything


def test_reset_links_relinks_by_stamp_without_duplicates(
    snsync: Snsync, sn_admin: ServiceNowAdmin
) -> None:
    snsync("run", "--once")
    users = len(sn_admin.rows("sys_user"))
    refused = snsync("reset", "--links")
    assert refused.exit_code != 0 and snsync.json("status")["links"]["user"] == 14
    assert snsync("reset", "--links", "--yes").exit_code == 0
    assert snsync.json("status")["links"] == {}
    result = snsync.json("run", "--once")
    assert "user Create" not in result["counts"]
    assert len(sn_admin.rows("sys_user")) == users
    assert snsync.json("status")["links"]["user"] == 14
