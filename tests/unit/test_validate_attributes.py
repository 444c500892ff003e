"""`snsync validate` knows Graph's user and group attributes, the provisioning service's names and
the reference tables: a typo is exit 2 with the key path and a "did you mean", before any I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from snsync.cli import cli
from snsync.config import load_config
from snsync.mapping.catalog import (
    SYNTHESIZED,
    UnknownAttributeError,
    filter_attribute,
    known_names,
    mapping_attribute,
)
from snsync.mapping.defaults import DEFAULT_GROUP_MAPPINGS, DEFAULT_USER_MAPPINGS

BASE: dict[str, Any] = {
    "graph": {
        "tenant_id": "contoso.example",
        "client_id": "11111111-1111-1111-1111-111111111111",
        "client_secret": "${GRAPH_SECRET}",
        "app_id": "22222222-2222-2222-2222-222222222222",
    },
    "servicenow": {"instance": "acme", "auth": {"username": "snsync", "password": "${SN_PW}"}},
    "state": {"path": "state.db"},
}
ENV = {"GRAPH_SECRET": "s3cret-value", "SN_PW": "pw"}


def write_config(tmp_path: Path, **sections: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**BASE, **sections}))
    path.chmod(0o600)
    return path


def users_with(**changes: Any) -> list[dict[str, Any]]:
    """The default user mappings with some targets replaced."""
    mappings = [dict(m) for m in DEFAULT_USER_MAPPINGS]
    for index, m in enumerate(mappings):
        if m["target"] in changes:
            mappings[index] = {"target": m["target"], **changes[m["target"]]}
    return mappings


def validate(path: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(path), "validate"], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def index_of(target: str) -> int:
    return [m["target"] for m in DEFAULT_USER_MAPPINGS].index(target)


@pytest.mark.parametrize(
    ("sections", "where", "hint"),
    [
        (
            {"mappings": {"users": users_with(first_name={"source": "givenNme"})}},
            f"mappings.users[{index_of('first_name')}].source",
            "did you mean 'givenName'?",
        ),
        (
            {
                "mappings": {
                    "users": users_with(
                        last_name={"expression": 'Join(" ", [givenName], [surnme])'}
                    )
                }
            },
            f"mappings.users[{index_of('last_name')}].expression",
            "[surnme] at col 24",
        ),
        (
            {
                "mappings": {
                    "users": users_with(
                        active={"expression": 'Switch([IsSoftDelete], , "False", "1", "True", "0")'}
                    )
                }
            },
            f"mappings.users[{index_of('active')}].expression",
            "did you mean 'IsSoftDeleted'?",
        ),
        (
            {
                "scope": {
                    "filters": [
                        [{"attribute": "country", "operator": "EQUALS", "value": "NL"}],
                        [{"attribute": "departmnt", "operator": "EQUALS", "value": "Sales"}],
                    ]
                }
            },
            "scope.filters[1][0].attribute",
            "did you mean 'department'?",
        ),
        (
            {
                "mappings": {
                    "users": users_with(
                        department={"source": "department", "reference": "cmn_departmnt"}
                    )
                }
            },
            f"mappings.users[{index_of('department')}].reference",
            "did you mean 'cmn_department'?",
        ),
        (
            {
                "mappings": {
                    "groups": [
                        *DEFAULT_GROUP_MAPPINGS[:2],
                        {"target": "description", "source": "descriptoin"},
                    ]
                }
            },
            "mappings.groups[2].source",
            "did you mean 'description'?",
        ),
    ],
)
def test_typo_is_exit_2_with_key_path_and_suggestion(
    tmp_path: Path, sections: dict[str, Any], where: str, hint: str
) -> None:
    code, stdout, stderr = validate(write_config(tmp_path, **sections))
    assert code == 2
    assert stderr.count("\n") == 1, stderr
    assert f": {where}: " in stderr and hint in stderr
    assert "Traceback" not in stderr and stdout == ""


def test_every_command_that_loads_the_config_refuses_the_typo(tmp_path: Path) -> None:
    path = write_config(tmp_path, mappings={"users": users_with(first_name={"source": "givenNme"})})
    for command in (["plan"], ["run", "--once"], ["status"]):
        result = CliRunner().invoke(cli, ["--config", str(path), *command], env=ENV)
        assert result.exit_code == 2, command
        assert "did you mean 'givenName'?" in result.stderr


def test_provisioning_service_names_are_translated_to_what_graph_returns(tmp_path: Path) -> None:
    mappings = users_with(
        mobile_phone={"source": "mobile"},
        title={"expression": 'Join(", ", [JobTitle], [physicalDeliveryOfficeName])'},
    )
    mappings.append({"target": "u_fax", "source": "facsimileTelephoneNumber"})
    mappings.append(
        {"target": "u_cost_center", "source": "extension_0123456789abcdef0123456789abcdef_cc"}
    )
    path = write_config(
        tmp_path,
        mappings={"users": mappings},
        scope={"filters": [[{"attribute": "objectId", "operator": "IS NOT NULL"}]]},
    )
    code, stdout, _ = validate(path)
    assert code == 0 and "valid" in stdout
    config = load_config(path, ENV)
    by_target = {m.target: m for m in config.mappings.users}
    assert by_target["mobile_phone"].source == "mobilePhone"
    assert by_target["title"].expression == 'Join(", ", [jobTitle], [officeLocation])'
    assert by_target["u_fax"].source == "faxNumber"
    assert by_target["u_cost_center"].source.startswith("extension_0123")  # type: ignore[union-attr]
    assert config.scope.filters[0][0].attribute == "id"


def test_extension_attributes_are_readable_and_an_unknown_one_is_not(tmp_path: Path) -> None:
    mappings = users_with(title={"source": "ExtensionAttribute7"})
    code, _, stderr = validate(write_config(tmp_path, mappings={"users": mappings}))
    assert code == 0, stderr
    mappings = users_with(title={"source": "extensionAttribute16"})
    code, _, stderr = validate(write_config(tmp_path, mappings={"users": mappings}))
    assert code == 2 and "extensionAttribute16" in stderr


def test_synthesized_attributes_cannot_be_tested_by_a_scoping_filter() -> None:
    with pytest.raises(UnknownAttributeError, match="computed by snsync"):
        filter_attribute("IsSoftDeleted")
    assert filter_attribute("telephoneNumber") == "businessPhones"


def test_every_synthesized_and_default_name_is_known() -> None:
    for object_type in ("user", "group"):
        for name in SYNTHESIZED[object_type]:
            assert mapping_attribute(name, object_type) == name
    for m in DEFAULT_USER_MAPPINGS:
        if "source" in m:
            assert m["source"] in known_names("user")
    for m in DEFAULT_GROUP_MAPPINGS:
        if "source" in m:
            assert m["source"] in known_names("group")


def test_custom_reference_tables_are_accepted(tmp_path: Path) -> None:
    mappings = users_with(department={"source": "department", "reference": "u_cost_centre"})
    assert validate(write_config(tmp_path, mappings={"users": mappings}))[0] == 0
