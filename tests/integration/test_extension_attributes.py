"""On-premises extension attributes: Graph nests extensionAttribute1..15 in
onPremisesExtensionAttributes; snsync reads them under the provisioning service's names, in
mappings and in scoping filters, on full and incremental cycles."""

from __future__ import annotations

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync
from .test_service_checks import DEFAULT_USERS

ADELE = "adele.vance@contoso.example"
LEE = "lee.gu@contoso.example"


def set_extension(graph_admin: GraphAdmin, upn: str, value: str) -> None:
    user_id = graph_admin.user(upn)["id"]
    body = {"onPremisesExtensionAttributes": {"extensionAttribute7": value}}
    graph_admin.call("PATCH", f"users/{user_id}", body, ok=204)


def test_extension_attribute_maps_and_follows_changes(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    set_extension(graph_admin, ADELE, "CC-4711")
    users = [*DEFAULT_USERS, {"target": "title", "source": "extensionAttribute7"}]
    snsync.reconfigure(mappings={"users": users})
    assert snsync("validate").exit_code == 0
    first = snsync("run", "--once")
    assert first.exit_code == 0, first.output
    assert sn_admin.one("sys_user", f"user_name={ADELE}")["title"] == "CC-4711"

    set_extension(graph_admin, ADELE, "CC-0815")
    second = snsync("run", "--once")
    assert second.exit_code == 0, second.output
    assert sn_admin.one("sys_user", f"user_name={ADELE}")["title"] == "CC-0815"


def test_scoping_filter_on_an_extension_attribute(
    snsync: Snsync, sn_admin: ServiceNowAdmin, graph_admin: GraphAdmin
) -> None:
    set_extension(graph_admin, LEE, "sync-me")
    adele_before = sn_admin.one("sys_user", f"user_name={ADELE}")
    clause = {"attribute": "extensionAttribute7", "operator": "EQUALS", "value": "sync-me"}
    snsync.reconfigure(scope={"filters": [[clause]]})
    assert snsync("validate").exit_code == 0
    run = snsync("run", "--once")
    assert run.exit_code == 0, run.output
    lee = sn_admin.one("sys_user", f"user_name={LEE}")
    assert lee["active"] == "true" and lee["source"].startswith("entra:"), "in scope: created"
    assert sn_admin.one("sys_user", f"user_name={ADELE}") == adele_before, "out of scope"
