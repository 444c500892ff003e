"""Custom columns and out-of-box fields (issue 13): an instance fixture declares extra columns of a
built-in table; records, writes, sys_dictionary and snsync's own field check accept them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snsync.errors import FixtureError
from snsync.sandbox.demo_instance import demo_instance
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox
from snsync.sandbox.servicenow import ServiceNowApp
from tests.integration.conftest import ServiceNowAdmin, Snsync
from tests.integration.sn_harness import ADMIN, Instance, Launch, listener_fixtures

pytestmark = pytest.mark.integration
server, start = listener_fixtures()
ADELE = "adele.vance@contoso.example"


def with_columns(columns: Any, **tables: Any) -> dict[str, Any]:
    fixture = demo_instance()
    fixture["columns"] = columns
    fixture["tables"].update(tables)
    return fixture


def test_declared_columns_are_read_written_and_queried(start: Launch) -> None:
    columns = {"sys_user": ["u_cost_center", {"name": "u_badge", "type": "integer"}]}
    sn: Instance = start(with_columns(columns, cmn_cost_center=[{"name": "CC-100", "code": "100"}]))
    body = {"user_name": "new.user", "u_cost_center": "CC-9", "u_badge": 42, "u_nope": "x"}
    created = sn.call("POST", "/api/now/table/sys_user", json=body)
    assert created.status_code == 201, created.text
    result = created.json()["result"]
    assert (result["u_cost_center"], result["u_badge"]) == ("CC-9", "42")
    assert "u_nope" not in result
    rows = sn.result(
        "/api/now/table/sys_user",
        params={"sysparm_query": "u_badge>40", "sysparm_fields": "user_name,u_badge"},
    )
    assert rows == [{"user_name": "new.user", "u_badge": "42"}]
    existing = sn.result("/api/now/table/sys_user", params={"sysparm_query": "user_name=admin"})
    assert existing[0]["u_cost_center"] == ""


def test_sys_dictionary_lists_built_in_and_declared_fields(start: Launch) -> None:
    sn: Instance = start(with_columns({"sys_user": ["u_cost_center"]}))
    rows = sn.result(
        "/api/now/table/sys_dictionary",
        params={"sysparm_query": "name=sys_user^elementSTARTSWITHu_^ORelement=notification"},
        auth=ADMIN,
    )
    assert {r["element"]: r["internal_type"] for r in rows} == {
        "u_cost_center": "string",
        "notification": "integer",
    }
    password = sn.result(
        "/api/now/table/sys_dictionary",
        params={"sysparm_query": "name=sys_user^element=user_password"},
        auth=ADMIN,
    )
    assert password[0]["internal_type"] == "password"
    refused = sn.call("GET", "/api/now/table/sys_dictionary")
    assert refused.status_code == 403  # snsync's user_admin account may not read the dictionary


def test_out_of_box_user_fields_have_their_types_defaults_and_labels(start: Launch) -> None:
    sn: Instance = start()
    (adele,) = sn.result(
        "/api/now/table/sys_user",
        params={"sysparm_query": f"user_name={ADELE}", "sysparm_display_value": "all"},
    )
    for name in ("notification", "preferred_language", "date_format", "cost_center"):
        assert name in adele
    assert adele["notification"] == {"display_value": "Enable", "value": "2"}
    assert adele["calendar_integration"] == {"display_value": "Outlook", "value": "1"}
    assert adele["building"] == {"display_value": "", "value": ""}
    assert adele["date_format"]["value"] == ""


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([], "instance fixture: columns: must be an object of table name to list of field names"),
        ({"nope": ["u_x"]}, "instance fixture: columns.nope: no such table (declare it under"),
        ({"sys_user": "u_x"}, "instance fixture: columns.sys_user: must be a list of field names"),
        ({"sys_user": ["email"]}, "instance fixture: columns.sys_user[0]: sys_user already has"),
        ({"sys_user": ["U X"]}, "instance fixture: columns.sys_user[0]: field names are lowercase"),
        (
            {"sys_user": [{"name": "u_x", "type": "blob"}]},
            "instance fixture: columns.sys_user[0].type: must be one of string, boolean",
        ),
        (
            {"sys_user": [{"name": "u_x", "type": "reference"}]},
            "instance fixture: columns.sys_user[0].reference: a reference names an existing",
        ),
    ],
)
def test_bad_columns_are_one_line_errors(columns: Any, message: str) -> None:
    with pytest.raises(FixtureError) as raised:
        ServiceNowApp(with_columns(columns))
    assert str(raised.value).startswith(message)


def test_fixture_records_may_only_use_declared_columns() -> None:
    fixture = with_columns({"sys_user": ["u_region"]})
    fixture["tables"]["sys_user"].append({"user_name": "x", "u_region": "EMEA"})
    app = ServiceNowApp(fixture)
    assert [u["u_region"] for u in app.records("sys_user") if u["user_name"] == "x"] == ["EMEA"]
    fixture["tables"]["sys_user"].append({"user_name": "y", "u_other": "EMEA"})
    with pytest.raises(FixtureError, match=r"u_other: sys_user has no such field"):
        ServiceNowApp(fixture)
    with pytest.raises(FixtureError, match=r"tables\.sys_dictionary: generated"):
        ServiceNowApp(with_columns({}, sys_dictionary=[]))


@pytest.fixture
def custom_sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    instance = tmp_path / "instance.json"
    instance.write_text(json.dumps(with_columns({"sys_user": ["u_cost_center"]})))
    options = SandboxOptions(instance=instance, directory=tmp_path / "sbx", retry_after=0)
    running = start_sandbox(options)
    yield running
    running.stop()


def test_snsync_maps_to_a_declared_custom_column(custom_sandbox: RunningSandbox) -> None:
    snsync = Snsync(custom_sandbox, custom_sandbox.config_path)
    snsync.reconfigure(
        mappings={
            "users": [
                {"target": "user_name", "source": "userPrincipalName", "matching": True},
                {"target": "u_cost_center", "constant": "CC-42"},
                {"target": "preferred_language", "constant": "en"},
            ]
        }
    )
    result = snsync("run", "--once")
    assert result.exit_code == 0, result.output
    admin = ServiceNowAdmin(custom_sandbox)
    adele = admin.one("sys_user", f"user_name={ADELE}")
    assert (adele["u_cost_center"], adele["preferred_language"]) == ("CC-42", "en")
    assert admin.one("sys_user", "user_name=admin")["u_cost_center"] == ""
