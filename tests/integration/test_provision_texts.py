"""`snsync provision USER`: the right words for a user out of scope with no record and for an
unknown user, and a disable held by the threshold stays held."""

from __future__ import annotations

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync
from .test_operations import LEE, PATTI


def test_out_of_scope_without_a_record(snsync: Snsync, graph_admin: GraphAdmin) -> None:
    graph_admin.create_user("outsider")
    result = snsync("provision", "outsider@contoso.example")
    assert result.exit_code == 0, result.output
    assert "not in scope" in result.stdout
    assert "the user is out of scope and has no ServiceNow record" in result.stdout
    assert "already matches" not in result.stdout


def test_unknown_user_is_a_usage_error(snsync: Snsync) -> None:
    result = snsync("provision", "nobody@contoso.example")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no directory user 'nobody@contoso.example': give a userPrincipalName or object id"
    )


def test_a_held_disable_stays_held(
    snsync: Snsync, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin
) -> None:
    snsync.reconfigure(safety={"max_disables": {"users": 1}})
    snsync("run", "--once")
    graph_admin.unassign(LEE)
    graph_admin.unassign(PATTI)
    assert snsync("run", "--once").exit_code == 4
    result = snsync("provision", "lee.gu@contoso.example")
    assert result.exit_code == 4, result.output
    assert "Disable held: 2 user disables are held" in result.stdout
    assert "snsync approve" in result.stdout
    assert sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")["active"] == "true"
    assert "HELD: 2 user disables" in snsync("status").stdout
    assert snsync("approve").exit_code == 0
    assert sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")["active"] == "false"
