"""Links journaled per write (issue 9.6): a confirmed create or adoption is in the state file the
moment its answer arrives, so a cycle killed right after still knows the record is snsync's."""

from __future__ import annotations

from pathlib import Path

from snsync.engine.journal import journaling
from snsync.model import Action, PlanItem, Result, Status
from snsync.state import State


def test_confirmed_creates_and_adoptions_are_linked_at_once(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    seen: list[Result] = []
    record = journaling(state, seen.append)
    create = PlanItem(Action.CREATE, "u1", "Ann", None)
    adopt = PlanItem(Action.UPDATE, "u2", "Bob", "b" * 32, adopt=True)
    row = PlanItem(Action.CREATE, "g1:u1", "Agents / Ann", None, object_type="membership")
    record(Result(create, Status.SUCCESS, "a" * 32))
    assert state.links("user") == {"u1": "a" * 32}, "linked before the cycle ends"
    record(Result(adopt, Status.WARNING, "b" * 32))
    record(Result(row, Status.SUCCESS, "r" * 32))
    assert state.links("user") == {"u1": "a" * 32, "u2": "b" * 32}
    assert state.links("membership") == {"g1:u1": "r" * 32}
    assert len(seen) == 3, "the next callback still sees every result"


def test_failures_updates_and_reference_creates_are_not_linked(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    record = journaling(state)
    record(Result(PlanItem(Action.CREATE, "u1", "Ann", None), Status.FAILURE, None))
    record(Result(PlanItem(Action.UPDATE, "u2", "Bob", "b" * 32), Status.SUCCESS, "b" * 32))
    department = PlanItem(
        Action.CREATE, "cmn_department:HR", "HR", None, object_type="cmn_department"
    )
    record(Result(department, Status.SUCCESS, "d" * 32))
    assert state.link_counts() == {}
