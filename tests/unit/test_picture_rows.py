"""The row-wise cached picture: whole saves, narrow reads through its indexes, narrowed saves
that touch only the rows given, and the migration from the old JSON-per-kind layout."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from snsync.model import CachedPicture, SourceCache, TargetSnapshot
from snsync.state import PictureChanges, PictureFacts, State
from snsync.state.db import MIGRATIONS


def picture() -> CachedPicture:
    users: dict[str, dict[str, Any]] = {
        "boss": {"id": "boss", "userPrincipalName": "boss@x"},
        "u1": {"id": "u1", "userPrincipalName": "one@x", "manager": {"id": "boss"}},
        "u2": {"id": "u2", "userPrincipalName": "two@x", "manager": {"id": "boss"}},
    }
    target = TargetSnapshot(
        {
            "s1": {"sys_id": "s1", "user_name": "One@X ", "source": "entra:u1"},
            "s2": {"sys_id": "s2", "user_name": "two@x", "source": ""},
        },
        {"cmn_department": {"sales": "d1"}},
        {"g1s": {"sys_id": "g1s", "name": "Group"}},
        {"m1": {"sys_id": "m1", "user": "s1", "group": "g1s"}},
        frozenset({"g1s"}),
    )
    directory = SourceCache(users, {"g1": {"id": "g1"}}, {"g1": ("u1", "u2")})
    return CachedPicture(directory, target)


FACTS = PictureFacts(
    in_scope=("u1", "u2"),
    assignments=(("Group", "g1", "r"),),
    roles={"r": "User"},
    pending={"user": {"u2"}},
    match_fields={"user": ("user_name",), "group": ("name",)},
    narrowable=True,
)


def test_whole_picture_round_trip_and_narrow_reads(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    state.save_picture(picture(), FACTS)
    assert state.has_cached_picture() and state.cached_picture() == picture()
    rows = state.picture_rows()
    assert rows.meta()["narrowable"] is True and rows.meta()["roles"] == {"r": "User"}
    assert rows.reports({"boss"}) == {"u1", "u2"}
    assert rows.present({"boss", "gone"}) == {"boss"}
    assert rows.in_scope_count() == 2 and rows.in_scope({"u1", "boss"}) == {"u1"}
    assert rows.groups_of({"u2"}) == [("g1", "u2")]
    assert rows.members_of({"g1"}) == {"u1", "u2"}
    assert set(rows.matching("user", "user_name", {"one@x"})) == {"s1"}, "folded as matching"
    assert set(rows.stamped("user", {"entra:u1"})) == {"s1"}
    assert set(rows.rows_of("user_sys", {"s1"})) == {"m1"}
    assert rows.pending() == {"user": {"u2"}}


def test_narrowed_save_touches_only_the_rows_given(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    state.save_picture(picture(), FACTS)
    changes = PictureChanges(
        focus_users=frozenset({"u2", "u3"}),
        users={"u3": {"id": "u3", "userPrincipalName": "three@x"}},  # u2 left the directory
        members={"g1": ("u3",)},
        focus_groups=frozenset(),
        groups={},
        dropped_groups=frozenset(),
        unread_groups=frozenset(),
        records={"user": {"s2": {"sys_id": "s2", "user_name": "renamed@x"}}},
        rows={"m2": {"sys_id": "m2", "user": "s2", "group": "g1s"}},
        removed_rows=frozenset({"m1"}),
        member_groups=frozenset({"g1s"}),
    )
    facts = PictureFacts(in_scope=("u3",), pending={}, narrowable=True)
    with state.transaction():
        state.db.execute("SELECT 1")  # nested transactions join
        record_changes(state, changes, facts)
    saved = state.cached_picture()
    assert set(saved.directory.users) == {"boss", "u1", "u3"}
    assert saved.directory.members == {"g1": ("u1", "u3")}
    assert saved.target.users["s2"]["user_name"] == "renamed@x"
    assert saved.target.users["s1"] == picture().target.users["s1"], "untouched row kept"
    assert set(saved.target.memberships) == {"m2"}
    rows = state.picture_rows()
    assert set(rows.matching("user", "user_name", {"two@x"})) == set(), "old value unindexed"
    assert set(rows.matching("user", "user_name", {"renamed@x"})) == {"s2"}
    assert rows.in_scope_count() == 2 and rows.pending() == {}


def record_changes(state: State, changes: PictureChanges, facts: PictureFacts) -> None:
    from snsync.state.rows import save_changes

    save_changes(state.db, changes, facts)


def test_an_old_json_picture_is_dropped_with_a_log_line_and_the_next_cycle_is_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        db.executescript(script)
    db.execute("PRAGMA user_version=3")
    db.execute(
        "INSERT INTO cache (kind, key, value) VALUES ('src_user', '', ?)",
        (json.dumps({"u1": {"id": "u1"}}),),
    )
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING):
        state = State(path)
    assert state.schema_version == len(MIGRATIONS)
    assert not state.has_cached_picture(), "no picture: the next cycle is full"
    assert any("older layout" in r.getMessage() for r in caplog.records)
    assert state.db.execute("SELECT count(*) FROM cache").fetchone()[0] == 0
