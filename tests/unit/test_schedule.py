"""The write schedule (engine/schedule.py, through engine/executor.py): an item starts as soon as
what it references exists, not when its whole wave has drained, and still sees exactly the
records of earlier waves."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from snsync.engine.executor import execute_waves
from snsync.engine.planner import PlanOptions, plan_users
from snsync.engine.schedule import dependency_graph, share
from snsync.engine.waves import user_waves
from snsync.model import (
    Action,
    Change,
    Desired,
    ObjectType,
    PlanItem,
    Reason,
    Record,
    Status,
    TargetSnapshot,
    placeholder,
)

from .fakes import FakeServiceNow

OPTIONS = PlanOptions(account="snsync")


def want(uid: str, manager: str | None = None) -> Desired:
    upn = f"{uid}@contoso.example"
    values = {"user_name": upn, "active": "true", "source": f"entra:{uid}"}
    refs = {"manager": ("sys_user", manager)} if manager else {}
    return Desired(uid, uid, True, True, values, {}, refs, (("user_name", upn),))


def users(*wanted: Desired) -> list[tuple[PlanItem, ...]]:
    return user_waves(plan_users(list(wanted), TargetSnapshot({}), {}, OPTIONS).items)


def group(gid: str) -> PlanItem:
    return PlanItem(
        Action.CREATE, gid, gid, None, (Change("name", None, gid),), object_type=ObjectType.GROUP
    )


def member(gid: str, uid: str) -> PlanItem:
    changes = (
        Change("group", None, placeholder(ObjectType.GROUP, gid)),
        Change("user", None, placeholder(ObjectType.USER, uid)),
    )
    return PlanItem(
        Action.CREATE,
        f"{gid}:{uid}",
        f"{uid} in {gid}",
        None,
        changes,
        object_type=ObjectType.MEMBERSHIP,
        pending=frozenset({"group", "user"}),
    )


class Gated(FakeServiceNow):
    """Creates of `slow` wait until `eng`'s create has been sent (or 10 s: no deadlock)."""

    def __init__(self) -> None:
        super().__init__()
        self.eng_sent = threading.Event()
        self.lock = threading.Lock()

    def create(self, table: str, values: Mapping[str, str]) -> Record:
        if values.get("user_name", "").startswith("slow@"):
            self.eng_sent.wait(10)
        with self.lock:
            record = super().create(table, values)
        if values.get("user_name", "").startswith("eng@"):
            self.eng_sent.set()
        return record


def test_dependencies_point_only_at_records_of_earlier_waves() -> None:
    waves = [*users(want("ceo"), want("eng", "ceo")), (group("g"),), (member("g", "eng"),)]
    graph = dependency_graph(waves)
    index = {i.directory_id: n for n, i in enumerate(graph.items)}
    assert graph.waits[index["ceo"]] == () and graph.waits[index["g"]] == ()
    assert graph.waits[index["eng"]] == (index["ceo"],)
    assert set(graph.waits[index["g:eng"]]) == {index["g"], index["eng"]}
    assert graph.height[index["ceo"]] == 2 and graph.height[index["g:eng"]] == 0


def test_a_report_is_written_while_its_managers_wave_is_still_being_written() -> None:
    waves = users(want("ceo"), want("slow"), want("eng", "ceo"))
    assert [sorted(i.directory_id for i in w) for w in waves] == [["ceo", "slow"], ["eng"]]
    target = Gated()
    results = execute_waves(waves, target, concurrency=2)
    assert all(r.status is Status.SUCCESS for r in results), results
    names = [values["user_name"].split("@")[0] for _, _, values in target.writes]
    assert names.index("eng") < names.index("slow"), "eng did not wait for slow's wave to drain"
    ceo = next(r.sys_id for r in results if r.item.directory_id == "ceo")
    eng = next(r for r in results if r.item.directory_id == "eng")
    assert eng.item.changes[-1] == Change("manager", None, ceo)


def test_an_item_never_sees_a_record_of_its_own_wave() -> None:
    (wave,) = users(want("ann"))
    waves = [(*wave, group("g"), member("g", "ann"))]  # the membership in the same wave
    results = execute_waves(waves, FakeServiceNow(), concurrency=4)
    row = next(r for r in results if r.item.object_type is ObjectType.MEMBERSHIP)
    assert row.status is Status.SKIPPED and row.reason == Reason.NOT_CREATED


def test_a_failed_manager_leaves_its_report_without_manager_and_its_rows_unwritten() -> None:
    waves = [*users(want("boss"), want("ann", "boss")), (group("g"),), (member("g", "boss"),)]
    target = FakeServiceNow(refuse={("sys_user", "user_name", "boss@contoso.example")})
    results = {r.item.directory_id: r for r in execute_waves(waves, target, concurrency=4)}
    assert results["boss"].status is Status.FAILURE
    assert results["ann"].status is Status.WARNING and "manager" in results["ann"].message
    assert results["g:boss"].status is Status.SKIPPED
    assert results["g"].status is Status.SUCCESS
    assert [r.item.directory_id for r in execute_waves(waves, FakeServiceNow())] == [
        i.directory_id for w in waves for i in w
    ], "results come back in the plan's order"


def test_each_worker_takes_an_even_share_of_what_is_ready() -> None:
    assert share(2000, 16, 50) == 50
    assert share(100, 16, 50) == 7
    assert share(3, 16, 50) == 1
    assert share(0, 16, 50) == 1
