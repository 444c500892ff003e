"""The state repository: private files from the first open, one named method per remembered
value, and a cycle's record committed as one transaction."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from snsync.model import (
    Action,
    CachedPicture,
    Change,
    DeltaLinks,
    Held,
    ObjectType,
    PlanItem,
    Quarantine,
    Result,
    SourceCache,
    Status,
    TargetSnapshot,
)
from snsync.state import CycleRecord, LinkChanges, RunLock, State, Watermarks


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_state_files_are_private_from_the_first_open(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # a typical login umask: files 0644 unless snsync sees to it
    try:
        path = tmp_path / "new" / "folder" / "state.db"
        state = State(path)
        assert os.umask(0o022) == 0o022  # the process umask is given back after the open
        state.save_links(ObjectType.USER, {"a": "1" * 32})
        lock = RunLock(path).acquire()
        assert mode(path.parent) == 0o700
        for name in ("state.db", "state.db-wal", "state.db-shm", "state.db.lock"):
            assert mode(path.parent / name) == 0o600, name
        lock.release()
        state.close()
    finally:
        os.umask(previous)


def test_files_of_an_older_snsync_are_made_private(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    State(path).close()
    path.chmod(0o644)
    (tmp_path / "state.db.lock").touch(0o644)
    State(path).close()
    with RunLock(path):
        assert mode(path) == 0o600
        assert mode(tmp_path / "state.db.lock") == 0o600


def test_named_values_round_trip(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    assert state.quarantine() is None and state.auth_failures() == 0
    state.save_quarantine(Quarantine(1.0, float("inf"), 3, "stopped"))
    assert state.quarantine() == Quarantine(1.0, float("inf"), 3, "stopped")
    state.save_auth_failures(2)
    state.save_last_success(5.0)
    state.save_held_disables([Held("user", 9, 5, "5")])
    state.mark_sent("failures:x", 7.0)
    state.close()
    state = State(tmp_path / "state.db")
    assert state.auth_failures() == 2 and state.last_success() == 5.0
    assert state.held_disables() == (Held("user", 9, 5, "5"),)
    assert state.last_sent("failures:x") == 7.0 and state.last_sent("other") is None


def test_watermarks_and_the_cached_picture(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    assert state.delta_links() is None and not state.has_cached_picture()
    picture = CachedPicture(
        SourceCache({"u1": {"id": "u1"}}, {"g1": {"id": "g1"}}, {"g1": ("u1",)}),
        TargetSnapshot(
            {"s1": {"sys_id": "s1"}},
            {"cmn_department": {"sales": "d1"}},
            {"s2": {"sys_id": "s2"}},
            {"m1": {"sys_id": "m1", "user": "s1", "group": "s2"}},
            frozenset({"s2"}),
        ),
    )
    state.save_picture(picture)
    state.save_watermarks(Watermarks(DeltaLinks("U", "G"), "2026-01-01 00:00:00", "f", True))
    assert state.cached_picture() == picture
    assert state.delta_links() == DeltaLinks("U", "G")
    assert state.servicenow_watermark() == "2026-01-01 00:00:00"
    basis = state.sync_basis()
    assert basis is not None and basis.fingerprint == "f"
    assert set(state.watermark_ages()) == {"users", "groups", "servicenow"}
    state.require_full_next()
    assert state.delta_links() is None
    state.clear_watermarks()
    assert state.watermark_ages() == {}


def result(directory_id: str, status: Status = Status.SUCCESS) -> Result:
    item = PlanItem(Action.CREATE, directory_id, directory_id, None, (Change("a", None, "b"),))
    return Result(item, status, "9" * 32)


def record(cycle_id: int, **extra: Any) -> CycleRecord:
    return CycleRecord(
        cycle_id,
        "success",
        {},
        {},
        [result("u1"), result("u2", Status.FAILURE)],
        {ObjectType.USER: LinkChanges({"u1": "9" * 32})},
        retry_backoff=[60],
        held=[Held("user", 3, 1, "1")],
        **extra,
    )


def test_a_cycle_is_recorded_whole(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    cycle_id = state.start_cycle("full")
    state.record_cycle(record(cycle_id))
    assert state.links(ObjectType.USER) == {"u1": "9" * 32}
    assert [e.directory_id for e in state.escrow()] == ["u2"]
    assert state.held_disables() == (Held("user", 3, 1, "1"),)
    assert state.cycles(1)[0]["outcome"] == "success"


def test_a_cycle_record_that_fails_half_way_leaves_nothing(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    cycle_id = state.start_cycle("full")
    # A value JSON cannot hold fails the picture, after links, log and escrow were written.
    broken = CachedPicture(SourceCache({"u": {"x": object()}}, {}, {}), TargetSnapshot({}))
    with pytest.raises(TypeError):
        state.record_cycle(record(cycle_id, picture=broken))
    assert state.links(ObjectType.USER) == {}
    assert state.escrow() == [] and state.held_disables() == ()
    assert state.cycles(1)[0]["outcome"] is None
    state.record_cycle(record(cycle_id))  # and the state is usable afterwards
    assert state.links(ObjectType.USER) == {"u1": "9" * 32}
