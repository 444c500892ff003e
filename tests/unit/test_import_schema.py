"""`snsync import-schema`: an exported Entra synchronization schema becomes snsync's config, with
every construct it cannot carry listed (path in the schema, one line each) and exit 5."""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from snsync.cli import cli
from snsync.config import load_config
from snsync.migrate.scoping import OPERATORS

FIXTURE = Path(__file__).parent.parent / "fixtures" / "servicenow-gallery-schema.json"
BASE = """\
graph:
  tenant_id: contoso.example
  client_id: 11111111-1111-1111-1111-111111111111
  client_secret: ${GRAPH_SECRET}
  app_id: 22222222-2222-2222-2222-222222222222
servicenow:
  instance: acme
  auth: {username: snsync, password: "${SN_PW}"}
state:
  path: state.db
scope:
  excluded_app_roles: [msiam_access]
  filters: [[{attribute: city, operator: EQUALS, value: Old}]]
safety:
  max_disables: 25
mappings:
  link_field: source
  users: [{target: user_name, source: userPrincipalName, matching: true}]
"""
ENV = {"GRAPH_SECRET": "s3cret-value", "SN_PW": "pw"}
USERS = "synchronizationRules[0].objectMappings[0]"
GROUPS = "synchronizationRules[0].objectMappings[1]"


def gallery() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def run_import(tmp_path: Path, schema: dict[str, Any] | None = None) -> tuple[Result, Path]:
    schema_path = tmp_path / "schema.json"
    schema_path.write_text(json.dumps(schema if schema is not None else gallery()))
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    out = tmp_path / "config.yaml"
    args = ["import-schema", str(schema_path), "-o", str(out), "--base", str(base)]
    return CliRunner().invoke(cli, args, env=ENV), out


def not_carried(result: Result) -> list[str]:
    prefix = "warning: not carried: "
    return [
        line[len("warning: ") :] for line in result.stderr.splitlines() if line.startswith(prefix)
    ]


def user_mappings(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"])


def test_gallery_schema_imports_with_nothing_lost(tmp_path: Path) -> None:
    result, out = run_import(tmp_path)
    assert result.exit_code == 0, result.stderr
    assert not_carried(result) == []
    config = load_config(out, ENV)
    users = {m.target: m for m in config.mappings.users}
    schema_targets = [m["targetAttributeName"] for m in user_mappings(gallery())]
    assert list(users) == schema_targets, "every user mapping, in the schema's order"
    assert [(m.target, m.precedence) for m in config.mappings.users if m.matching] == [
        ("user_name", 1),
        ("email", 2),
    ]
    assert users["mobile_phone"].source == "mobilePhone"
    assert users["u_office"].source == "officeLocation"
    assert users["phone"].expression == "Coalesce([telephoneNumber], [mobilePhone])"
    cost_center = users["u_cost_center"]
    assert (cost_center.apply, cost_center.kind) == ("on_create", "expression")
    assert (users["vip"].constant, users["vip"].apply) == ("false", "on_create")
    assert (users["time_zone"].constant, users["time_zone"].apply) == ("Europe/Amsterdam", "always")
    assert users["zip"].default == "00000"
    assert (users["department"].reference, users["manager"].reference) == (
        "cmn_department",
        "sys_user",
    )
    assert [m.target for m in config.mappings.groups] == ["name", "description", "email", "active"]
    assert [[(c.attribute, c.operator, c.value) for c in f] for f in config.scope.filters] == [
        [("department", "EQUALS", "IT"), ("city", "EQUALS", "Redmond")],
        [("department", "EQUALS", "Engineering"), ("jobTitle", "IS NOT NULL", None)],
    ]
    actions = config.safety.actions
    assert (actions.create, actions.update, actions.disable) == (True, True, True)


def test_connection_settings_come_from_the_base_as_written(tmp_path: Path) -> None:
    _, out = run_import(tmp_path)
    text = out.read_text()
    assert "${GRAPH_SECRET}" in text and "s3cret-value" not in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    config = load_config(out, ENV)
    assert config.scope.excluded_app_roles == ["msiam_access"], "other scope keys kept"
    assert config.safety.max_disables.users == 25, "other safety keys kept"
    assert config.mappings.link_field == "source"
    assert all(c.value != "Old" for f in config.scope.filters for c in f), "filters replaced"
    validated = CliRunner().invoke(cli, ["--config", str(out), "validate"], env=ENV)
    assert validated.exit_code == 0, validated.stderr


def test_every_mapping_has_a_comment_naming_its_place_in_the_schema(tmp_path: Path) -> None:
    _, out = run_import(tmp_path)
    lines = out.read_text().splitlines()
    items = [i for i, line in enumerate(lines) if line.startswith("    - {target:")]
    assert len(items) == len(user_mappings(gallery())) + 4
    for index in items:
        assert lines[index - 1].startswith("    # from synchronizationRules[0].objectMappings[")
    comment = f"# from {USERS}.attributeMappings[16] (Function IIF, ObjectAddOnly)"
    assert comment in lines[items[16] - 1]


def test_without_base_placeholders_are_written_to_stdout(tmp_path: Path) -> None:
    schema_path = tmp_path / "schema.json"
    schema_path.write_text(FIXTURE.read_text())
    result = CliRunner().invoke(cli, ["import-schema", str(schema_path)])
    assert result.exit_code == 0
    written = yaml.safe_load(result.stdout)
    assert written["graph"]["client_secret"] == "${SNSYNC_GRAPH_SECRET}"
    assert written["servicenow"]["instance"] == "your-instance"
    assert "placeholders" in result.stdout.splitlines()[1]


@pytest.mark.parametrize(
    ("spelled", "expected"),
    [(op, op) for op in OPERATORS]
    + [
        ("NOT_EQUALS", "NOT EQUALS"),
        ("IS_NOT_NULL", "IS NOT NULL"),
        ("REGEX_MATCH", "REGEX MATCH"),
        ("GREATER_THAN", "Greater_Than"),
        ("greater than or equals", "Greater_Than_OR_EQUALS"),
        ("INCLUDES", "Includes"),
        ("ends with", "ENDS_WITH"),
    ],
)
def test_every_documented_scoping_operator_is_carried(
    tmp_path: Path, spelled: str, expected: str
) -> None:
    schema = gallery()
    scope = schema["synchronizationRules"][0]["objectMappings"][0]["scope"]
    values = [] if expected.startswith("IS ") else ["4" if "&" in expected else "Sales.*"]
    clause = {"operatorName": spelled, "sourceOperandName": "department", "targetOperand": None}
    if values:
        clause["targetOperand"] = {"values": values}
    scope["groups"] = [{"name": "one", "clauses": [clause]}]
    result, out = run_import(tmp_path, schema)
    assert result.exit_code == 0, result.stderr
    (only,) = load_config(out, ENV).scope.filters
    assert (only[0].attribute, only[0].operator) == ("department", expected)
    assert only[0].value == (values[0] if values else None)


@pytest.mark.parametrize(
    ("flow_types", "expected"),
    [
        ("Add, Update, Delete", (True, True, True)),
        ("Add,Update", (True, True, False)),
        ("Update", (False, True, False)),
        ("AddUpdateDelete", (True, True, True)),
    ],
)
def test_flow_types_become_action_switches(
    tmp_path: Path, flow_types: str, expected: tuple[bool, bool, bool]
) -> None:
    schema = gallery()
    for mapping in schema["synchronizationRules"][0]["objectMappings"]:
        mapping["flowTypes"] = flow_types
    result, out = run_import(tmp_path, schema)
    assert result.exit_code == 0, result.stderr
    actions = load_config(out, ENV).safety.actions
    assert (actions.create, actions.update, actions.disable) == expected


def customised() -> dict[str, Any]:
    """The gallery schema with one of every construct snsync cannot carry."""
    schema = gallery()
    rule = schema["synchronizationRules"][0]
    users, groups = rule["objectMappings"]
    attributes = users["attributeMappings"]
    attributes[5]["flowType"] = "AttributeAddOnly"
    attributes[11]["source"] = {"type": "Function", "expression": "AppendX([city])", "name": "X"}
    attributes[12]["source"] = {"type": "Attribute", "name": "extensionAttribute16"}
    users["scope"]["groups"][0]["clauses"].append(
        {"operatorName": "IsMemberOf", "sourceOperandName": "department", "targetOperand": None}
    )
    users["scope"]["inputFilterGroups"] = [{"name": "x", "clauses": []}]
    groups["flowTypes"] = "Add, Update"
    groups["scope"] = {"groups": [{"name": "g", "clauses": []}]}
    rule["objectMappings"].append(
        {"sourceObjectName": "User", "targetObjectName": "cmn_location", "attributeMappings": []}
    )
    schema["synchronizationRules"].append(
        {"sourceDirectoryName": "Workday", "targetDirectoryName": "ServiceNow"}
    )
    return schema


def test_every_unsupported_construct_is_listed_with_its_path_and_exit_5(tmp_path: Path) -> None:
    result, out = run_import(tmp_path, customised())
    assert result.exit_code == 5
    listed = not_carried(result)
    expected_paths = [
        f"{USERS}.attributeMappings[5]: flowType 'AttributeAddOnly'",
        f"{USERS}.attributeMappings[11]: target 'city': expression 'AppendX([city])' does not",
        f"{USERS}.attributeMappings[12]: target 'country': 'extensionAttribute16'",
        f"{USERS}.scope.inputFilterGroups:",
        f"{USERS}.scope.groups[0].clauses[2]: operator 'IsMemberOf'",
        f"{GROUPS}.flowTypes: group flow types 'Add, Update' differ",
        f"{GROUPS}.scope: scoping filters on groups",
        "synchronizationRules[0].objectMappings[2]: object mapping 'User' -> 'cmn_location'",
        "synchronizationRules[1]: source directory 'Workday'",
    ]
    for fragment in expected_paths:
        assert sum(line.startswith(f"not carried: {fragment}") for line in listed) == 1, fragment
    assert len(listed) == len(expected_paths)
    assert "error: wrote" in result.stderr and "but 9 construct(s) of schema.json" in result.stderr
    text = out.read_text()
    assert text.count("# NOT CARRIED ") == len(expected_paths), "and named in the file too"
    config = load_config(out, ENV)
    targets = [m.target for m in config.mappings.users]
    assert "title" not in targets and "city" not in targets and "country" not in targets
    (only,) = config.scope.filters  # the group with IsMemberOf was left out whole
    assert [c.value for c in only] == ["Engineering", None]


def test_newer_exports_name_the_source_directory_microsoft_entra_id(tmp_path: Path) -> None:
    schema = gallery()
    schema["synchronizationRules"][0]["sourceDirectoryName"] = "Microsoft Entra ID"
    result, _ = run_import(tmp_path, schema)
    assert result.exit_code == 0 and not_carried(result) == []


def scim_schema() -> dict[str, Any]:
    def attr(name: str) -> dict[str, Any]:
        return {"type": "Attribute", "name": name, "expression": f"[{name}]", "parameters": []}

    def mapping(target: str, source: dict[str, Any], matching: int = 0) -> dict[str, Any]:
        return {"targetAttributeName": target, "source": source, "matchingPriority": matching}

    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
    users = [
        mapping("userName", attr("userPrincipalName"), 1),
        mapping("active", {"type": "Function", "expression": "Not([IsSoftDeleted])"}),
        mapping("name.givenName", attr("givenName")),
        mapping("name.familyName", attr("surname")),
        mapping('emails[type eq "work"].value', attr("mail")),
        mapping('phoneNumbers[type eq "mobile"].value', attr("mobile")),
        mapping(enterprise + "department", attr("department")),
        mapping(enterprise + "manager", attr("manager")),
        mapping("externalId", attr("mailNickname")),
    ]
    groups = [
        mapping("displayName", attr("displayName"), 1),
        mapping("members", attr("members")),
    ]
    return {
        "synchronizationRules": [
            {
                "id": "serviceNowScim",
                "sourceDirectoryName": "Microsoft Entra ID",
                "targetDirectoryName": "ServiceNow SCIM",
                "objectMappings": [
                    {
                        "sourceObjectName": "User",
                        "targetObjectName": "urn:ietf:params:scim:schemas:core:2.0:User",
                        "flowTypes": "Add, Update, Delete",
                        "attributeMappings": users,
                    },
                    {
                        "sourceObjectName": "Group",
                        "targetObjectName": "urn:ietf:params:scim:schemas:core:2.0:Group",
                        "flowTypes": "Add, Update, Delete",
                        "attributeMappings": groups,
                    },
                ],
            }
        ]
    }


def test_the_servicenow_scim_template_is_translated_to_table_fields(tmp_path: Path) -> None:
    result, out = run_import(tmp_path, scim_schema())
    assert result.exit_code == 5
    (only,) = not_carried(result)
    assert only.startswith(f"not carried: {USERS}.attributeMappings[8]: target 'externalId'")
    assert "ServiceNow SCIM template" in out.read_text()
    config = load_config(out, ENV)
    assert [(m.target, m.source or m.expression) for m in config.mappings.users] == [
        ("user_name", "userPrincipalName"),
        ("active", "Not([IsSoftDeleted])"),
        ("first_name", "givenName"),
        ("last_name", "surname"),
        ("email", "mail"),
        ("mobile_phone", "mobilePhone"),
        ("department", "department"),
        ("manager", "manager"),
    ]
    assert [m.target for m in config.mappings.groups] == ["name"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "line 1, col 2: not valid JSON"),
        ('{"directories": []}', "not a synchronization schema"),
        ("[1, 2]", "not a synchronization schema"),
    ],
)
def test_a_file_that_is_not_a_schema_is_one_line_exit_2(
    tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "schema.json"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["import-schema", str(path), "-o", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and fragment in result.stderr
    assert not (tmp_path / "c.yaml").exists()


def test_a_missing_schema_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import-schema", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "cannot read the schema file" in result.stderr


def test_crafted_schema_text_cannot_add_config_keys(tmp_path: Path) -> None:
    """Names and expressions from the schema land in comments and values: a newline in them
    must not start a YAML line of its own (here: one that would switch disables off)."""
    schema = copy.deepcopy(gallery())
    users = schema["synchronizationRules"][0]["objectMappings"][0]
    injected = "safety: {actions: {disable: false}}"
    users["scope"]["groups"][0]["name"] = f"x\n{injected}\n#"
    users["scope"]["groups"][1]["name"] = f"y\u2028{injected}\u2028#\x85{injected}"
    users["attributeMappings"][11]["source"] = {
        "type": "Constant",
        "expression": '"Redmond\\nsafety: {actions: {disable: false}}\u2028x: 1\x85y"',
    }
    result, out = run_import(tmp_path, schema)
    assert result.exit_code == 0, result.stderr
    config = load_config(out, ENV)
    assert config.safety.actions.disable is True
    city = next(m for m in config.mappings.users if m.target == "city")
    assert city.constant == "Redmond\\nsafety: {actions: {disable: false}}\u2028x: 1\x85y"


def test_quiet_shows_only_the_error_line(tmp_path: Path) -> None:
    schema_path = tmp_path / "schema.json"
    out = tmp_path / "config.yaml"
    schema_path.write_text(FIXTURE.read_text())
    quiet = CliRunner().invoke(cli, ["import-schema", str(schema_path), "-o", str(out), "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""
    schema_path.write_text(json.dumps(customised()))
    quiet = CliRunner().invoke(cli, ["import-schema", str(schema_path), "-o", str(out), "-q"])
    assert quiet.exit_code == 5
    assert quiet.stderr.count("\n") == 1 and quiet.stderr.startswith("error: wrote")


def test_the_base_may_be_the_output_and_a_utf16_export_is_read(tmp_path: Path) -> None:
    """`-o config.yaml --base config.yaml` rewrites the config in place; PowerShell 5's `>`
    writes UTF-16 with a byte order mark."""
    schema_path = tmp_path / "schema.json"
    schema_path.write_bytes(FIXTURE.read_text().encode("utf-16"))
    config = tmp_path / "config.yaml"
    config.write_text(BASE)
    args = ["import-schema", str(schema_path), "-o", str(config), "--base", str(config)]
    result = CliRunner().invoke(cli, args, env=ENV)
    assert result.exit_code == 0, result.stderr
    loaded = load_config(config, ENV)
    assert loaded.scope.excluded_app_roles == ["msiam_access"]
    assert [m.target for m in loaded.mappings.users][:2] == ["user_name", "email"]


def test_a_mapping_to_the_link_field_is_not_carried(tmp_path: Path) -> None:
    """snsync's ownership stamp lives in sys_user.source: a mapping must not overwrite it."""
    schema = gallery()
    attributes = user_mappings(schema)
    attributes.append({**attributes[3], "targetAttributeName": "source"})
    schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"] = attributes
    result, out = run_import(tmp_path, schema)
    assert result.exit_code == 5
    (only,) = not_carried(result)
    where = f"{USERS}.attributeMappings[{len(attributes) - 1}]"
    assert only.startswith(f"not carried: {where}: maps 'source'")
    assert "source" not in [m.target for m in load_config(out, ENV).mappings.users]
