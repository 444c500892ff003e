"""`snsync expression`: given values without any config, a directory user through the sandbox
with the attributes a cycle synthesizes, and every kind of bad input as one line and its code."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snsync.cli import cli

from .conftest import GraphAdmin, Snsync

ACTIVE = 'Switch([IsSoftDeleted], , "False", "1", "True", "0")'


def expression(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["expression", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_given_values_need_no_config() -> None:
    code, out, _ = expression(
        'Join(" ", [givenName], [surname])', "--set", "givenName=Ada", "--set", "Surname=Lovelace"
    )
    assert code == 0
    assert out.splitlines() == [
        'Expression: Join(" ", [givenName], [surname])',
        '  [givenName] = "Ada"',
        '  [surname] = "Lovelace"',
        'Result: "Ada Lovelace"',
    ]


@pytest.mark.parametrize(("value", "result"), [("true", "0"), ("false", "1")])
def test_booleans_and_json_output(value: str, result: str) -> None:
    code, out, _ = expression(ACTIVE, "--set", f"IsSoftDeleted={value}", "--output", "json")
    assert code == 0
    data = json.loads(out)
    assert data["result"] == result and data["inputs"] == {"IsSoftDeleted": value == "true"}


def test_lists_ignored_flow_and_redacted_values() -> None:
    assert expression('Join(",", [proxyAddresses])', "--set", 'proxyAddresses=["a","b"]')[
        1
    ].endswith('Result: "a,b"\n')
    code, out, _ = expression("IgnoreFlowIfNullOrEmpty([mobilePhone])")
    assert code == 0 and "Result: ignored (IgnoreFlowIfNullOrEmpty)" in out
    code, out, _ = expression("Redact([employeeId])", "--set", "employeeId=S3cr3t-42")
    assert code == 0 and "S3cr3t-42" not in out.split("Result:")[1] and "[redacted]" in out


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (['Join(" ", [givenName]'], 2, "expression: col 22: expected ')'"),
        (["ToLower([givenNme])"], 2, "did you mean 'givenName'?"),
        (["Nope([givenName])"], 2, "expression: col 1:"),
        (["ToLower([givenName])", "--set", "givenName"], 2, "--set givenName: write NAME=VALUE"),
        (["ToLower([givenName])", "--set", "surnme=x"], 2, "did you mean 'surname'?"),
        (
            ["Item([businessPhones], 3)", "--set", 'businessPhones=["1"]'],
            1,
            "ExpressionEvaluationFailed",
        ),
    ],
)
def test_bad_input_is_one_line(args: list[str], code: int, fragment: str) -> None:
    exit_code, out, err = expression(*args)
    assert exit_code == code and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and fragment in line, line


def test_a_directory_user_as_a_cycle_sees_them(snsync: Snsync, graph_admin: GraphAdmin) -> None:
    upn = "adele.vance@contoso.example"
    result = snsync("expression", ACTIVE, "--user", upn)
    assert result.exit_code == 0, result.output
    assert (
        "User: Adele Vance <adele.vance@contoso.example>" in result.stdout
        and "in scope" in result.stdout
    )
    assert result.stdout.splitlines()[-2:] == ["  [IsSoftDeleted] = false", 'Result: "1"']
    graph_admin.call("PATCH", f"users/{upn}", {"accountEnabled": False}, ok=204)
    data = snsync.json(
        "expression", f'Join("|", {ACTIVE}, [objectId], [telephoneNumber])', "--user", upn
    )
    active, object_id, phone = data["result"].split("|")
    assert (
        active == "0"
        and object_id == data["user"]["id"]
        and phone == graph_admin.user(upn)["businessPhones"][0]
    )
    what_if = snsync.json(
        "expression", "ToUpper([department])", "--user", upn, "--set", "department=Legal"
    )
    assert what_if["result"] == "LEGAL"


def test_an_unknown_directory_user_is_exit_2(snsync: Snsync) -> None:
    result = snsync("expression", "[mail]", "--user", "nobody@contoso.example")
    assert (
        result.exit_code == 2
        and "--user nobody@contoso.example: no such directory user" in result.stderr
    )
