"""Narrow reads and writes of the row-wise cached picture (layout in picture.py): what a narrowed
incremental cycle loads (only the rows its changes touch) and writes back (only the rows of the
objects it planned)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snsync.model import Record
from snsync.state.picture import (
    PictureFacts,
    chunks,
    fold,
    load_references,
    put_groups,
    put_meta,
    put_pending,
    put_records,
    put_references,
    put_rows,
    put_users,
)

Raw = dict[str, Any]


@dataclass(frozen=True)
class PictureChanges:
    """What a narrowed cycle changed in the cached picture: the rows of the objects it planned
    (`focus_users`, `focus_groups`) replaced, and the target rows it loaded, wrote or dropped."""

    focus_users: frozenset[str]  # row, memberships and pending mark replaced (absent: removed)
    users: Mapping[str, Mapping[str, Any]]  # the focus users still in the directory
    members: Mapping[str, tuple[str, ...]]  # group -> focus users that are its members
    focus_groups: frozenset[str]  # pending mark replaced
    groups: Mapping[str, Mapping[str, Any]]  # groups read or changed
    dropped_groups: frozenset[str]  # groups no longer assigned: their rows and members go
    unread_groups: frozenset[str]  # groups no longer read (an excluded role): members stay
    records: Mapping[str, Mapping[str, Record]]  # kind -> sys_id -> record
    rows: Mapping[str, Record]  # membership rows loaded, read or written
    removed_rows: frozenset[str]  # membership rows deleted
    member_groups: frozenset[str]  # every group whose membership rows the picture keeps
    references: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class PictureRows:
    """Queries of the cached picture, by id and through its indexes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM pic_meta")}

    def users(self, ids: Iterable[str]) -> dict[str, Raw]:
        return {
            i: json.loads(v)
            for i, v in self._in("SELECT id, value FROM pic_user WHERE id IN ({})", ids)
        }

    def present(self, ids: Iterable[str]) -> set[str]:
        return {i for (i,) in self._in("SELECT id FROM pic_user WHERE id IN ({})", ids)}

    def in_scope(self, ids: Iterable[str]) -> set[str]:
        query = "SELECT id FROM pic_user WHERE in_scope=1 AND id IN ({})"
        return {i for (i,) in self._in(query, ids)}

    def in_scope_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM pic_user WHERE in_scope=1").fetchone()[0])

    def reports(self, manager_ids: Iterable[str]) -> set[str]:
        return {
            i for (i,) in self._in("SELECT id FROM pic_user WHERE manager IN ({})", manager_ids)
        }

    def group_ids(self) -> set[str]:
        return {i for (i,) in self.db.execute("SELECT id FROM pic_group")}

    def groups(self, ids: Iterable[str]) -> dict[str, Raw]:
        query = "SELECT id, value FROM pic_group WHERE id IN ({})"
        return {i: json.loads(v) for i, v in self._in(query, ids)}

    def groups_of(self, user_ids: Iterable[str]) -> list[tuple[str, str]]:
        """(group, user) pairs of the users' cached memberships."""
        query = "SELECT group_id, user_id FROM pic_member WHERE user_id IN ({}) ORDER BY rowid"
        return [(g, u) for g, u in self._in(query, user_ids)]

    def members_of(self, group_ids: Iterable[str]) -> set[str]:
        query = "SELECT user_id FROM pic_member WHERE group_id IN ({})"
        return {u for (u,) in self._in(query, group_ids)}

    def records(self, kind: str, sys_ids: Iterable[str]) -> dict[str, Record]:
        query = "SELECT sys_id, value FROM pic_record WHERE kind=? AND sys_id IN ({})"
        return {s: json.loads(v) for s, v in self._in(query, sys_ids, kind)}

    def stamped(self, kind: str, stamps: Iterable[str]) -> dict[str, Record]:
        query = "SELECT sys_id, value FROM pic_record WHERE kind=? AND stamp IN ({})"
        return {s: json.loads(v) for s, v in self._in(query, stamps, kind)}

    def matching(self, kind: str, name: str, values: Iterable[str]) -> dict[str, Record]:
        """Records whose matching field `name` holds one of the values (as matching folds it)."""
        query = (
            "SELECT r.sys_id, r.value FROM pic_match m JOIN pic_record r ON r.kind=m.kind AND "
            "r.sys_id=m.sys_id WHERE m.kind=? AND m.field=? AND m.value IN ({})"
        )
        folded = {fold(v) for v in values} - {""}
        return {s: json.loads(v) for s, v in self._in(query, folded, kind, name)}

    def rows_of(self, column: str, sys_ids: Iterable[str]) -> dict[str, Record]:
        """Membership rows by their group's (`group_sys`) or user's (`user_sys`) sys_id."""
        assert column in ("group_sys", "user_sys")
        query = f"SELECT sys_id, value FROM pic_row WHERE {column} IN ({{}})"
        return {s: json.loads(v) for s, v in self._in(query, sys_ids)}

    def member_groups(self) -> frozenset[str]:
        return frozenset(s for (s,) in self.db.execute("SELECT sys_id FROM pic_member_group"))

    def references(self) -> dict[str, dict[str, str]]:
        return load_references(self.db)

    def pending(self) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for kind, directory_id in self.db.execute(
            "SELECT object_type, directory_id FROM pic_pending"
        ):
            result.setdefault(kind, set()).add(directory_id)
        return result

    def _in(self, query: str, ids: Iterable[str], *before: str) -> Iterable[tuple[Any, ...]]:
        for chunk in chunks(dict.fromkeys(ids)):
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(query.format(marks), (*before, *chunk))


def save_changes(db: sqlite3.Connection, changes: PictureChanges, facts: PictureFacts) -> None:
    """Write back what a narrowed cycle changed (inside the caller's transaction)."""
    meta = PictureRows(db).meta()
    match_fields = {k: tuple(v) for k, v in meta.get("match_fields", {}).items()}
    for chunk in chunks(sorted(changes.focus_users)):
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM pic_user WHERE id IN ({marks})", chunk)
        db.execute(f"DELETE FROM pic_member WHERE user_id IN ({marks})", chunk)
        db.execute(
            f"DELETE FROM pic_pending WHERE object_type IN ('user', 'membership') AND "
            f"directory_id IN ({marks})",
            chunk,
        )
    for chunk in chunks(sorted(changes.focus_groups | changes.dropped_groups)):
        marks = ",".join("?" * len(chunk))
        db.execute(
            f"DELETE FROM pic_pending WHERE object_type='group' AND directory_id IN ({marks})",
            chunk,
        )
    for chunk in chunks(sorted(changes.dropped_groups)):
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM pic_member WHERE group_id IN ({marks})", chunk)
    for chunk in chunks(sorted(changes.dropped_groups | changes.unread_groups)):
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM pic_group WHERE id IN ({marks})", chunk)
    put_users(db, changes.users, facts.in_scope)
    db.executemany(
        "INSERT OR IGNORE INTO pic_member (group_id, user_id) VALUES (?, ?)",
        [(g, u) for g, users in changes.members.items() for u in users],
    )
    put_groups(db, changes.groups)
    link_field = meta.get("link_field", facts.link_field)
    for kind, records in changes.records.items():
        put_records(db, kind, records, match_fields.get(kind, ()), link_field)
    _save_rows(db, changes)
    put_references(db, changes.references)
    put_pending(db, facts.pending)
    put_meta(db, facts, match_fields)


def _save_rows(db: sqlite3.Connection, changes: PictureChanges) -> None:
    before = PictureRows(db).member_groups()
    dropped = sorted(before - changes.member_groups)
    for chunk in chunks(dropped):
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM pic_row WHERE group_sys IN ({marks})", chunk)
        db.execute(f"DELETE FROM pic_member_group WHERE sys_id IN ({marks})", chunk)
    db.executemany(
        "INSERT OR IGNORE INTO pic_member_group (sys_id) VALUES (?)",
        [(s,) for s in sorted(changes.member_groups - before)],
    )
    kept = {s: r for s, r in changes.rows.items() if r.get("group") in changes.member_groups}
    put_rows(db, kept)
    for chunk in chunks(sorted(changes.removed_rows)):
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM pic_row WHERE sys_id IN ({marks})", chunk)


def link_queries_in(
    db: sqlite3.Connection, query: str, ids: Collection[str], *before: str
) -> list[tuple[Any, ...]]:
    """Rows of a links query with an `IN ({})` over `ids`, in chunks (used by the store)."""
    return list(PictureRows(db)._in(query, ids, *before))
