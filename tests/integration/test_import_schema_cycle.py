"""The imported ServiceNow gallery schema, run on the sandbox: the records that schema implies,
field by field, create-only values staying put on update, users outside its scoping filter left
alone. The instance declares the schema's custom `u_` columns, as a real instance would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from snsync.cli import cli
from snsync.sandbox.demo_instance import demo_instance, demo_sys_id
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox

from .conftest import GraphAdmin, ServiceNowAdmin

SCHEMA = Path(__file__).parent.parent / "fixtures" / "servicenow-gallery-schema.json"
CUSTOM_COLUMNS = ["u_cost_center", "u_office"]
LEE_BY_EMAIL = demo_sys_id("sys_user", "lgu")
IN_SCOPE = ("adele.vance", "lee.gu", "nestor.wilke", "miriam.graham", "sanjay.shah")
# Assigned (directly or through a group) but outside both filter groups of the schema.
OUT_OF_SCOPE = ("brian.johnson", "emily.braun", "patti.fernandez", "nora.okafor")
EXISTING_OUT_OF_SCOPE = ("megan.bowen", "alex.wilber")  # records exist in ServiceNow
DIRECTORY_FIELDS = (
    "id,mail,givenName,surname,jobTitle,businessPhones,mobilePhone,department,employeeId,city,"
    "country,postalCode,officeLocation,preferredLanguage"
)


@pytest.fixture
def instance_sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    instance = demo_instance()
    instance["columns"] = {"sys_user": CUSTOM_COLUMNS}
    # Lee exists under a local user name: the schema's second matching attribute (email) finds him.
    instance["tables"]["sys_user"].append(
        {
            "sys_id": LEE_BY_EMAIL,
            "user_name": "lgu",
            "first_name": "Lee",
            "last_name": "Gu",
            "email": "lee.gu@contoso.example",
        }
    )
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(instance))
    running = start_sandbox(
        SandboxOptions(directory=tmp_path / "sandbox", instance=path, retry_after=0)
    )
    yield running
    running.stop()


def snsync(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def user(sn: ServiceNowAdmin, nickname: str) -> dict[str, str]:
    return sn.one("sys_user", f"user_name={nickname}@contoso.example")


def test_imported_gallery_schema_produces_the_records_it_implies(
    instance_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    sandbox = instance_sandbox
    config = tmp_path / "imported.yaml"
    imported = CliRunner().invoke(
        cli, ["import-schema", str(SCHEMA), "-o", str(config), "--base", str(sandbox.config_path)]
    )
    assert imported.exit_code == 0, imported.stderr
    assert snsync(config, "validate").exit_code == 0
    sn, graph = ServiceNowAdmin(sandbox), GraphAdmin(sandbox)
    untouched = {n: user(sn, n) for n in EXISTING_OUT_OF_SCOPE}

    first = snsync(config, "run", "--once")
    assert first.exit_code == 0, first.output

    for nickname in IN_SCOPE:
        if nickname != "lee.gu":
            check_fields(sn, graph, nickname)
    lee = sn.one("sys_user", f"sys_id={LEE_BY_EMAIL}")
    lee_id = graph.user("lee.gu@contoso.example")["id"]
    assert lee["source"] == f"entra:{lee_id}", "adopted through email, the 2nd matching field"
    assert lee["user_name"] == "lgu", "snsync renames a record matched by email a cycle later"
    assert lee["u_cost_center"] == "" and lee["vip"] == "false", "create-only: not on adoption"
    assert user(sn, "adele.vance")["manager"] == LEE_BY_EMAIL
    nestor = user(sn, "nestor.wilke")
    assert (nestor["u_cost_center"], nestor["vip"], nestor["notification"]) == (
        "US-100",
        "false",
        "2",
    )
    assert_left_alone(sn, untouched)

    nestor_id = graph.user("nestor.wilke@contoso.example")["id"]
    graph.call("PATCH", f"users/{nestor_id}", {"country": "Germany", "jobTitle": "IT Lead"})
    sn.update("sys_user", nestor["sys_id"], {"vip": "true"})
    second = snsync(config, "run", "--once")
    assert second.exit_code == 0, second.output
    after = user(sn, "nestor.wilke")
    assert (after["country"], after["title"]) == ("Germany", "IT Lead"), "Always flows"
    assert after["u_cost_center"] == "US-100", "ObjectAddOnly: stays put although IIF changed"
    assert after["vip"] == "true", "ObjectAddOnly constant: not reverted"
    lee = sn.one("sys_user", f"sys_id={LEE_BY_EMAIL}")
    assert lee["user_name"] == "lee.gu@contoso.example", "renamed the cycle after adoption"
    assert lee["u_cost_center"] == ""
    for nickname in IN_SCOPE:
        check_fields(sn, graph, nickname)
    assert_left_alone(sn, untouched)


def check_fields(sn: ServiceNowAdmin, graph: GraphAdmin, nickname: str) -> None:
    """Every field the schema maps, against the directory user (Always mappings)."""
    upn = f"{nickname}@contoso.example"
    directory = graph.call("GET", f"users/{upn}?$select={DIRECTORY_FIELDS}")
    record = user(sn, nickname)
    department = sn.one("cmn_department", f"name={directory['department']}")
    phones = directory.get("businessPhones") or []
    expected = {
        "user_name": upn,
        "email": directory["mail"],
        "active": "true",
        "first_name": directory["givenName"],
        "last_name": directory["surname"],
        "title": directory["jobTitle"],
        "phone": phones[0] if phones else directory.get("mobilePhone") or "",
        "mobile_phone": directory.get("mobilePhone") or "",
        "department": department["sys_id"],
        "employee_number": directory["employeeId"],
        "city": directory["city"],
        "country": directory["country"],
        "zip": directory["postalCode"],
        "time_zone": "Europe/Amsterdam",
        "u_office": directory["officeLocation"],
        "preferred_language": directory["preferredLanguage"][:2],
        "source": f"entra:{directory['id']}",
    }
    assert {k: record.get(k) for k in expected} == expected, nickname


def assert_left_alone(sn: ServiceNowAdmin, untouched: dict[str, dict[str, str]]) -> None:
    for nickname, row in untouched.items():
        assert user(sn, nickname) == row, f"{nickname} is outside the scoping filter"
    for nickname in OUT_OF_SCOPE:
        assert sn.rows("sys_user", f"user_name={nickname}@contoso.example") == [], nickname
