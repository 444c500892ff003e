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


def test_user_matches_part_of_a_name_upn_or_mail(snsync: Snsync) -> None:
    assert snsync("run", "--once").exit_code in (0, 1)
    for text in ("adele", "VANCE", "adele.vance@contoso", "Adele V"):
        rows = snsync.json("logs", "--user", text)
        assert rows, text
        assert all("Adele Vance" in r["display_name"] for r in rows), (text, rows)
    assert snsync.json("logs", "--user", "nobody-like-this") == []


def test_until_and_times(snsync: Snsync) -> None:
    assert snsync("run", "--once").exit_code in (0, 1)
    assert snsync.json("logs", "--until", "1h") == []
    assert snsync.json("logs", "--until", "2999-01-01 00:00")
    assert snsync.json("logs", "--since", "2000-01-01T00:00:00Z")
    bad = snsync("logs", "--until", "yesterday-ish")
    assert bad.exit_code == 2 and "neither a duration" in bad.stderr


def test_old_references_show_by_name(snsync: Snsync, graph_admin: GraphAdmin) -> None:
    assert snsync("run", "--once").exit_code in (0, 1)
    upn = "adele.vance@contoso.example"
    before = graph_admin.call("GET", f"users/{upn}?$select=department")["department"]
    graph_admin.call("PATCH", f"users/{upn}", {"department": "Marketing"}, ok=204)
    assert snsync("run", "--once").exit_code in (0, 1)
    text = snsync("logs", "--user", "adele", "--action", "Update").stdout
    line = [x for x in text.splitlines() if x.strip().startswith("department:")][-1]
    assert f"'{before.lower()}' (" in line.lower() and "-> 'Marketing' (" in line, line


def test_old_log_rows_are_pruned_after_a_cycle(snsync: Snsync) -> None:
    from snsync.state import State

    assert snsync("run", "--once").exit_code in (0, 1)
    rows = len(snsync.json("logs", "--limit", "100000"))
    state = State(snsync.sandbox.directory / "state.db")
    try:
        state.db.execute("UPDATE log SET time = time - 91 * 86400")
    finally:
        state.close()
    snsync.reconfigure(state={"keep_log": "90d"})
    assert len(snsync.json("logs", "--limit", "100000")) == rows, "reading prunes nothing"
    done = snsync("-v", "run", "--once")
    assert f"pruned {rows} provisioning-log rows older than state.keep_log" in done.stderr
    assert all(r["cycle_id"] != 1 for r in snsync.json("logs", "--limit", "100000"))
