"""An attribute value over limits.max_attribute_length refuses that one object (a Failure with
AttributeValueTooLong): nothing of it is written to ServiceNow, the value is never cached in the
state file, and every other user syncs."""

from __future__ import annotations

from pathlib import Path

from snsync.sandbox.runner import RunningSandbox

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync

ADELE = "adele.vance@contoso.example"
LEE = "lee.gu@contoso.example"
HUGE = "FORGED-TITLE-" + "x" * 600


def state_bytes(sandbox: RunningSandbox) -> bytes:
    return b"".join(p.read_bytes() for p in Path(sandbox.directory).glob("state.db*"))


def test_an_over_long_value_refuses_only_that_user_and_is_never_stored(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin, sandbox: RunningSandbox
) -> None:
    snsync.reconfigure(limits={"max_attribute_length": 256})
    assert snsync("run", "--once").exit_code == 0
    lee_before = sn_admin.one("sys_user", f"user_name={LEE}")
    lee_id = graph_admin.user(LEE)["id"]
    graph_admin.call("PATCH", f"users/{lee_id}", {"jobTitle": HUGE}, ok=204)
    graph_admin.call("PATCH", f"users/{graph_admin.user(ADELE)['id']}", {"city": "Oslo"}, ok=204)

    for args in (("run", "--once"), ("run", "--once", "--full")):  # incremental, then full
        result = snsync(*args)
        assert result.exit_code == 1, result.output  # one object failed
        assert "AttributeValueTooLong" in result.output
        assert sn_admin.one("sys_user", f"user_name={LEE}") == lee_before, "nothing written"
    assert sn_admin.one("sys_user", f"user_name={ADELE}")["city"] == "Oslo", "others sync"
    assert b"FORGED-TITLE" not in state_bytes(sandbox), "the value is never cached"
    logs = snsync("logs", "--status", "Failure")
    assert "AttributeValueTooLong" in logs.output and "FORGED-TITLE" not in logs.output

    graph_admin.call("PATCH", f"users/{lee_id}", {"jobTitle": "Director"}, ok=204)
    assert snsync("run", "--once").exit_code == 0
    assert sn_admin.one("sys_user", f"user_name={LEE}")["title"] == "Director"
