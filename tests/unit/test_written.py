"""The cycle's results as the scheduler keeps them (engine/written.py): compactly, yet every
Result handed back is the one the executor produced, item as sent included."""

from __future__ import annotations

import json

from snsync.compact import Row
from snsync.engine.executor import execute_waves, resolve
from snsync.engine.written import Written, packed
from snsync.model import Action, Change, ObjectType, PlanItem, Reason, Result, Status
from snsync.state.picture import _dumps

from .fakes import FakeServiceNow
from .test_schedule import group, member, users, want


def waves_with_every_outcome() -> list[tuple[PlanItem, ...]]:
    """Creates with managers and memberships (resolved), a failing manager (its report warned,
    its row skipped), a row in its user's wave (skipped) and a planned skip."""
    skip = PlanItem(Action.SKIP, "x", "X", None, reason=Reason.NOT_ACTIVE, message="not active")
    return [
        *users(want("ceo"), want("eng", "ceo"), want("boss"), want("ann", "boss")),
        (group("g"), skip),
        (member("g", "eng"), member("g", "boss"), member("g", "ceo")),
    ]


def test_every_result_is_the_one_the_executor_produced() -> None:
    target = FakeServiceNow(refuse={("sys_user", "user_name", "boss@contoso.example")})
    seen: list[Result] = []
    waves = waves_with_every_outcome()
    results = execute_waves(waves, target, concurrency=3, on_result=seen.append)
    assert isinstance(results, Written)
    planned = [i for w in waves for i in w]
    assert [r.item.directory_id for r in results] == [i.directory_id for i in planned]
    by_id = {r.item.directory_id: r for r in seen}
    assert list(results) == [by_id[i.directory_id] for i in planned], "the same Results"
    assert results[-1] == by_id["g:ceo"] and results[1:3] == [results[1], results[2]]
    row = by_id["g:eng"]
    assert row.status is Status.SUCCESS and row.item.pending == frozenset()
    assert {c.new for c in row.item.changes} == {by_id["g"].sys_id, by_id["eng"].sys_id}
    ceo = by_id["ceo"].sys_id
    assert ceo is not None and by_id["eng"].item.changes[-1] == Change("manager", None, ceo)
    assert by_id["ann"].status is Status.WARNING and by_id["g:boss"].status is Status.SKIPPED
    assert {r.item.directory_id for r in results.whole()} == {"boss", "ann", "x", "g:boss"}


def test_the_cheap_view_gives_planned_items_and_the_same_outcomes() -> None:
    waves = waves_with_every_outcome()
    target = FakeServiceNow(refuse={("sys_user", "user_name", "boss@contoso.example")})
    results = execute_waves(waves, target, concurrency=2)
    assert isinstance(results, Written)
    planned = [i for w in waves for i in w]
    for sent, cheap, item in zip(results, results.outcomes(), planned, strict=True):
        assert (cheap.status, cheap.sys_id, cheap.reason, cheap.message, cheap.record) == (
            sent.status, sent.sys_id, sent.reason, sent.message, sent.record,
        )  # fmt: skip
        assert cheap.item is item or cheap is sent, "planned item, or the whole result"
    row = results.outcomes()[-1]
    assert row.item.pending, "the membership as planned: its placeholders still in it"


def test_a_packed_answer_reads_compares_and_saves_like_the_dict() -> None:
    answer = {"sys_id": "a" * 32, "user_name": "ann@contoso.example", "active": "true"}
    kept = packed(answer)
    assert isinstance(kept, Row)
    assert kept == answer and answer == kept and dict(kept) == answer
    assert kept["user_name"] == "ann@contoso.example" and kept.get("title") is None
    assert "active" in kept and "title" not in kept and len(kept) == 3
    assert json.loads(_dumps(kept)) == answer
    again = packed({"sys_id": "b" * 32, "user_name": "bob", "active": "false"})
    assert isinstance(again, Row)
    assert again._shape is kept._shape, "one tuple of names for every answer like it"


def test_a_result_without_an_answer_yet_is_not_made_up() -> None:
    item = PlanItem(Action.CREATE, "g", "g", None, object_type=ObjectType.GROUP)
    written = Written((item,), ((),), resolve)
    try:
        written[0]
    except LookupError:
        pass
    else:
        raise AssertionError("an item without a result gave one")
    written.put(0, Result(item, Status.SUCCESS, "s" * 32, record={"sys_id": "s" * 32}))
    assert written[0].record == {"sys_id": "s" * 32} and written.made(0) == "s" * 32
