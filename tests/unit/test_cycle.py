"""The cycle through in-memory ports, without a socket: read, plan, guard, execute, record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from snsync.engine.cycle import CycleReport, cycle, plan_reading
from snsync.engine.executor import execute_waves
from snsync.engine.reading import read_picture
from snsync.engine.supervisor import QuarantinedError, RunOptions, supervise
from snsync.model import (
    GROUP_TABLE,
    MEMBER_TABLE,
    USER_TABLE,
    Action,
    ObjectType,
    Reason,
    Status,
    placeholder,
)

from .fakes import ACCOUNT, FakeClock, FakeDirectory, FakeServiceNow, fake_config, fake_ports

DEPARTMENTS = "cmn_department"


@pytest.fixture
def directory() -> FakeDirectory:
    """A CEO with two reports, a group of the reports; all assigned through users or the group."""
    d = FakeDirectory()
    d.add_user("ceo", department="Board")
    d.add_user("ann", manager="ceo", department="Sales")
    d.add_user("bob", manager="ceo", department="Research")
    for uid in ("ceo", "ann", "bob"):
        d.assign(uid)
    d.add_group("sales", "ann", "bob")
    return d


@pytest.fixture
def servicenow() -> FakeServiceNow:
    sn = FakeServiceNow()
    sn.insert(USER_TABLE, user_name="admin", active="true")
    sn.insert(DEPARTMENTS, name="Sales")
    sn.insert(DEPARTMENTS, name="Board")
    return sn


def run(
    tmp_path: Path,
    directory: FakeDirectory,
    servicenow: FakeServiceNow,
    clock: FakeClock | None = None,
    **sections: Any,
) -> CycleReport:
    config = fake_config(tmp_path, **sections)
    ports = fake_ports(config, directory, servicenow, clock or FakeClock())
    try:
        return cycle(config, ports)
    finally:
        ports.state.close()  # type: ignore[attr-defined]


def by_name(servicenow: FakeServiceNow, table: str = USER_TABLE) -> dict[str, dict[str, str]]:
    key = "user_name" if table == USER_TABLE else "name"
    return {r.get(key, ""): r for r in servicenow.rows(table)}


def test_read_returns_one_complete_picture(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    group = servicenow.insert(GROUP_TABLE, name="Sales", active="true")
    row = servicenow.insert(MEMBER_TABLE, group=group, user="someone")
    config = fake_config(tmp_path)
    ports = fake_ports(config, directory, servicenow, FakeClock())
    reading = read_picture(config, ports)
    picture = reading.picture
    assert reading.mode == "full"
    assert set(picture.source.users) == {"ceo", "ann", "bob"}
    assert picture.source.users["ann"].attributes["manager"] == "ceo"
    departments = {r["name"].lower(): r["sys_id"] for r in servicenow.rows(DEPARTMENTS)}
    assert picture.target.references[DEPARTMENTS] == departments and len(departments) == 2
    # The group will be adopted by name: its membership rows are part of the picture already.
    assert picture.target.member_groups == {group} and set(picture.target.memberships) == {row}


def test_plan_names_records_created_this_cycle_by_placeholders(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    config = fake_config(tmp_path, references={"create_missing": True})
    ports = fake_ports(config, directory, servicenow, FakeClock())
    planned = plan_reading(config, ports, read_picture(config, ports))
    (research,) = planned.references
    assert (research.table, research.display_name) == (DEPARTMENTS, "Research")
    first, *_, members = planned.waves
    assert first == (research,) and all(i.object_type is ObjectType.MEMBERSHIP for i in members)
    bob = next(i for i in planned.items() if i.directory_id == "bob")
    values = {c.field: c.new for c in bob.changes}
    assert values["department"] == placeholder(DEPARTMENTS, "cmn_department:Research")
    assert values["manager"] == placeholder("user", "ceo")
    assert bob.pending == {"department", "manager"}
    assert {c.new for i in members for c in i.changes if c.field == "group"} == {
        placeholder("group", "sales")
    }
    assert servicenow.writes == []  # planning wrote nothing


def test_run_writes_the_plan_and_resolves_every_placeholder(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    report = run(tmp_path, directory, servicenow, references={"create_missing": True})
    assert report.exit_code == 0 and not report.failures()
    users = by_name(servicenow)
    research = by_name(servicenow, DEPARTMENTS)["Research"]["sys_id"]
    ceo = users["ceo@contoso.example"]["sys_id"]
    assert users["bob@contoso.example"]["department"] == research
    assert users["bob@contoso.example"]["manager"] == ceo
    sales = by_name(servicenow, GROUP_TABLE)["Sales"]["sys_id"]
    rows = {(r["group"], r["user"]) for r in servicenow.rows(MEMBER_TABLE)}
    assert rows == {(sales, users[f"{u}@contoso.example"]["sys_id"]) for u in ("ann", "bob")}
    # No written value is a placeholder.
    assert not any("(new " in v for _, _, values in servicenow.writes for v in values.values())


def test_a_failed_create_skips_what_depends_on_it(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    servicenow.refuse.add((USER_TABLE, "user_name", "ceo@contoso.example"))
    servicenow.refuse.add((USER_TABLE, "user_name", "bob@contoso.example"))
    report = run(tmp_path, directory, servicenow)
    results = {(r.item.kind, r.item.display_name): r for r in report.results}
    assert results[("user", "Ceo")].status is Status.FAILURE
    ann = results[("user", "Ann")]
    assert ann.status is Status.WARNING and ann.reason == Reason.NOT_CREATED
    assert "manager" not in by_name(servicenow)["ann@contoso.example"]
    bob_row = results[("membership", "Sales / Bob")]
    assert bob_row.status is Status.SKIPPED and bob_row.reason == Reason.NOT_CREATED
    assert len(servicenow.rows(MEMBER_TABLE)) == 1  # Ann's row only


def test_guards_hold_disables_over_the_threshold(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    assert run(tmp_path, directory, servicenow).exit_code == 0
    directory.assignments.clear()  # everyone unassigned: three disables, limit one
    report = run(tmp_path, directory, servicenow, safety={"max_disables": 1})
    assert report.exit_code == 4 and report.planned.held
    assert {r.item.action for r in report.results if r.item.kind == "user"} == {
        Action.STAGED_DISABLE
    }
    assert all(r["active"] == "true" for r in servicenow.rows(USER_TABLE))


def test_back_off_waits_on_the_clock_port(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    servicenow.refuse.add((USER_TABLE, "user_name", "ann@contoso.example"))
    clock = FakeClock()
    sections: dict[str, Any] = {"safety": {"retry_backoff": ["6h"]}}
    for _ in range(2):  # the second failure starts a 6 h back-off
        run(tmp_path, directory, servicenow, clock, schedule={"full_every": "1s"}, **sections)
    waiting = run(tmp_path, directory, servicenow, clock, **sections)
    ann = next(r for r in waiting.results if r.item.display_name == "Ann")
    assert ann.reason == Reason.RETRY_BACKOFF
    servicenow.refuse.clear()
    clock.now += 6 * 3600 + 1
    again = run(tmp_path, directory, servicenow, clock, schedule={"full_every": "1s"}, **sections)
    assert next(r for r in again.results if r.item.display_name == "Ann").status is Status.SUCCESS


def test_a_cycle_is_recorded_and_the_next_one_reads_only_changes(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    first = run(tmp_path, directory, servicenow)
    assert first.cycle_id is not None
    writes = len(servicenow.writes)
    directory.delta_items["users-1"] = [{"id": "ann", "jobTitle": "Head of Sales"}]
    second = run(tmp_path, directory, servicenow)
    changed = [r for r in second.results if r.item.writes]
    assert [(r.item.display_name, r.item.action) for r in changed] == [("Ann", Action.UPDATE)]
    assert len(servicenow.writes) == writes + 1
    quiet = run(tmp_path, directory, servicenow)
    assert not [r for r in quiet.results if r.item.writes]


def test_dry_run_writes_nothing_and_reports_the_plan(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    config = fake_config(tmp_path)
    ports = fake_ports(config, directory, servicenow, FakeClock())
    report = cycle(config, ports, dry_run=True)
    assert servicenow.writes == [] and report.cycle_id is None
    assert [r.item for r in report.results] == list(report.planned.items())


def test_executor_resolves_placeholders_once_per_wave(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    config = fake_config(tmp_path)
    ports = fake_ports(config, directory, servicenow, FakeClock())
    planned = plan_reading(config, ports, read_picture(config, ports))
    results = execute_waves(planned.waves, servicenow, concurrency=1)
    assert [r.item.directory_id for r in results] == [i.directory_id for i in planned.items()]
    assert all(not r.item.pending for r in results if r.status is Status.SUCCESS)
    assert servicenow.rows(USER_TABLE)[-1]["sys_created_by"] == ACCOUNT


def test_a_directory_value_that_looks_like_a_placeholder_is_written_as_it_is(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    # An attacker who can edit a directory attribute must not steer a sys_id into a field.
    crafted = placeholder("user", "ceo")
    directory.people["ann"]["jobTitle"] = crafted
    directory.people["bob"]["department"] = placeholder(DEPARTMENTS, "cmn_department:Sales")
    run(tmp_path, directory, servicenow, references={"create_missing": True})
    users = by_name(servicenow)
    ann, bob = users["ann@contoso.example"], users["bob@contoso.example"]
    assert ann["title"] == crafted
    assert ann["manager"] == users["ceo@contoso.example"]["sys_id"]
    # The crafted department name is a name like any other: looked up, created, referenced.
    created = by_name(servicenow, DEPARTMENTS)[placeholder(DEPARTMENTS, "cmn_department:Sales")]
    assert bob["department"] == created["sys_id"]
    assert bob["department"] != by_name(servicenow, DEPARTMENTS)["Sales"]["sys_id"]


def test_supervisor_quarantines_and_waits_on_the_clock_port(
    tmp_path: Path, directory: FakeDirectory, servicenow: FakeServiceNow
) -> None:
    config = fake_config(tmp_path, safety={"quarantine": {"min_writes": 1, "backoff": ["6h"]}})
    clock = FakeClock()
    ports = fake_ports(config, directory, servicenow, clock)
    for uid in ("ceo", "ann", "bob"):
        servicenow.refuse.add((USER_TABLE, "user_name", f"{uid}@contoso.example"))
    supervise(config, ports, RunOptions())
    quarantine = ports.state.quarantine()
    assert quarantine is not None and quarantine.until == clock.now + 6 * 3600
    writes = len(servicenow.writes)
    with pytest.raises(QuarantinedError):
        supervise(config, ports, RunOptions())
    assert len(servicenow.writes) == writes  # nothing was tried while quarantined
    servicenow.refuse.clear()
    clock.now += 6 * 3600
    report = supervise(config, ports, RunOptions(force_full=True))
    assert report.exit_code == 0 and ports.state.quarantine() is None
