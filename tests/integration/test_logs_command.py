"""`snsync logs`: --status and --action validated, CSV output (formula cells defused), and -q
keeps validate and reset silent when they work."""

from __future__ import annotations

import csv
import io

import pytest

from .conftest import GraphAdmin, Snsync


@pytest.mark.parametrize("option", ["--status", "--action"])
def test_unknown_status_or_action_lists_the_valid_ones(snsync: Snsync, option: str) -> None:
    result = snsync("logs", option, "Bogus")
    assert result.exit_code == 2
    assert "'Bogus' is not one of:" in result.stderr
    assert ("Success, Failure, Skipped, Warning" if option == "--status" else "StagedDisable") in (
        result.stderr
    )


def test_status_and_action_ignore_case(snsync: Snsync) -> None:
    assert snsync("run", "--once").exit_code in (0, 1)
    rows = snsync.json("logs", "--action", "create", "--status", "SUCCESS")
    assert rows and {(r["action"], r["status"]) for r in rows} == {("Create", "Success")}


def test_csv_output_parses_back_and_defuses_formulas(
    snsync: Snsync, graph_admin: GraphAdmin
) -> None:
    user = graph_admin.create_user("formula", displayName='=HYPERLINK("https://evil.example","x")')
    graph_admin.assign(user["id"])
    assert snsync("run", "--once").exit_code in (0, 1)
    result = snsync("logs", "--output", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and len(rows) == len(snsync.json("logs"))
    names = {r["display_name"] for r in rows}
    assert '\'=HYPERLINK("https://evil.example","x")' in names
    assert not any(v.startswith(("=", "+", "@")) for r in rows for v in r.values())


def test_quiet_validate_and_reset_say_nothing(snsync: Snsync) -> None:
    for command in (["validate"], ["reset"]):
        result = snsync(*command, "-q")
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
