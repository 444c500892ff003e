"""The cached picture's layout in the state file: one row per object, keyed by id, with the
indexes a narrowed incremental cycle asks through (reports by manager, memberships by user and by
group, records by sys_id, stamp and matching value). Only this module and rows.py know it.

A full cycle replaces every row (`save_picture`); a narrowed cycle rewrites only the rows of the
objects it planned (`rows.save_changes`). Beside the two sides the picture keeps a few facts the
next narrowed cycle needs (`PictureFacts`): who was in scope, the assignments and role names it
was computed with, which objects had a plan item (they are planned again), and whether the
picture may be read narrowly at all."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from snsync.model import CachedPicture, Record, SourceCache, TargetSnapshot

log = logging.getLogger(__name__)
KINDS = ("user", "group")  # the record kinds: sys_user and sys_user_group
CHUNK = 500  # ids per `IN (...)` query

SCHEMA = """
CREATE TABLE pic_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pic_user (
    id TEXT PRIMARY KEY, manager TEXT, in_scope INTEGER NOT NULL DEFAULT 0, value TEXT NOT NULL
);
CREATE INDEX pic_user_manager ON pic_user (manager);
CREATE INDEX pic_user_scope ON pic_user (in_scope);
CREATE TABLE pic_group (id TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pic_member (
    group_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (group_id, user_id)
);
CREATE INDEX pic_member_user ON pic_member (user_id);
CREATE TABLE pic_record (
    kind TEXT NOT NULL, sys_id TEXT NOT NULL, stamp TEXT, value TEXT NOT NULL,
    PRIMARY KEY (kind, sys_id)
);
CREATE INDEX pic_record_stamp ON pic_record (kind, stamp);
CREATE TABLE pic_match (
    kind TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, sys_id TEXT NOT NULL
);
CREATE INDEX pic_match_value ON pic_match (kind, field, value);
CREATE INDEX pic_match_sys ON pic_match (kind, sys_id);
CREATE TABLE pic_row (
    sys_id TEXT PRIMARY KEY, group_sys TEXT NOT NULL, user_sys TEXT NOT NULL, value TEXT NOT NULL
);
CREATE INDEX pic_row_group ON pic_row (group_sys);
CREATE INDEX pic_row_user ON pic_row (user_sys);
CREATE TABLE pic_member_group (sys_id TEXT PRIMARY KEY);
CREATE TABLE pic_reference (
    tbl TEXT NOT NULL, name TEXT NOT NULL, sys_id TEXT NOT NULL, PRIMARY KEY (tbl, name)
);
CREATE TABLE pic_pending (
    object_type TEXT NOT NULL, directory_id TEXT NOT NULL, PRIMARY KEY (object_type, directory_id)
);
CREATE INDEX links_sys_id ON links (object_type, sys_id);
CREATE INDEX links_pair_user
    ON links (object_type, substr(directory_id, instr(directory_id, ':') + 1));
DELETE FROM cache
"""
TABLES = (
    "pic_meta",
    "pic_user",
    "pic_group",
    "pic_member",
    "pic_record",
    "pic_match",
    "pic_row",
    "pic_member_group",
    "pic_reference",
    "pic_pending",
)


@dataclass(frozen=True)
class PictureFacts:
    """What the cache keeps beside the two sides, for the next narrowed cycle."""

    in_scope: Collection[str] = ()  # directory users in scope (of the users saved)
    assignments: tuple[tuple[str, str, str], ...] = ()  # (principal type, id, app role id)
    roles: Mapping[str, str] = field(default_factory=dict)  # app role id -> value
    pending: Mapping[str, Collection[str]] = field(default_factory=dict)  # kind -> ids
    match_fields: Mapping[str, Sequence[str]] = field(default_factory=dict)  # kind -> fields
    narrowable: bool = False  # the next incremental cycle may read and plan only what changed
    link_field: str | None = "source"  # the stamp field, indexed
    listed: Collection[str] = ()  # groups whose members the picture holds (every group assigned)
    service_principal: str = ""  # the app's object id (the next cycle asks for it by id)


def old_layout_in_use(db: sqlite3.Connection) -> bool:
    """Whether the file holds a picture in the old layout (one JSON document per kind)."""
    return db.execute("SELECT 1 FROM cache LIMIT 1").fetchone() is not None


def migrated_from_old_layout() -> None:
    log.warning(
        "state: the cached picture was kept in an older layout (one JSON document per kind); "
        "it was dropped, so the next cycle reads everything (a full cycle) and keeps it as rows"
    )


def has_picture(db: sqlite3.Connection) -> bool:
    """Whether a picture is cached, without loading it."""
    return db.execute("SELECT 1 FROM pic_meta WHERE key='saved'").fetchone() is not None


def load_picture(db: sqlite3.Connection) -> CachedPicture:
    """The whole picture the last cycle saved (empty when there is none)."""
    users = {i: json.loads(v) for i, v in db.execute("SELECT id, value FROM pic_user")}
    groups = {i: json.loads(v) for i, v in db.execute("SELECT id, value FROM pic_group")}
    members: dict[str, list[str]] = {g: [] for g in groups}
    for group_id, user_id in db.execute("SELECT group_id, user_id FROM pic_member ORDER BY rowid"):
        members.setdefault(group_id, []).append(user_id)
    directory = SourceCache(users, groups, {g: tuple(m) for g, m in members.items()})
    records: dict[str, dict[str, Record]] = {kind: {} for kind in KINDS}
    for kind, sys_id, value in db.execute("SELECT kind, sys_id, value FROM pic_record"):
        records.setdefault(kind, {})[sys_id] = json.loads(value)
    rows = {s: json.loads(v) for s, v in db.execute("SELECT sys_id, value FROM pic_row")}
    target = TargetSnapshot(
        records["user"],
        load_references(db),
        records["group"],
        rows,
        frozenset(s for (s,) in db.execute("SELECT sys_id FROM pic_member_group")),
    )
    return CachedPicture(directory, target)


def load_references(db: sqlite3.Connection) -> dict[str, dict[str, str]]:
    references: dict[str, dict[str, str]] = {}
    for table, name, sys_id in db.execute("SELECT tbl, name, sys_id FROM pic_reference"):
        references.setdefault(table, {})[name] = sys_id
    return references


def save_picture(
    db: sqlite3.Connection, picture: CachedPicture, facts: PictureFacts | None = None
) -> None:
    """Replace the whole cached picture (inside the caller's transaction). Every table is fed
    from a generator: one row (and its JSON) at a time, never a list of a whole table."""
    facts = facts or PictureFacts()
    for table in TABLES:
        db.execute(f"DELETE FROM {table}")  # the table names are constants
    directory, target = picture.directory, picture.target
    put_users(db, directory.users, facts.in_scope)
    put_groups(db, directory.groups)
    db.executemany(
        "INSERT OR IGNORE INTO pic_member (group_id, user_id) VALUES (?, ?)",
        ((g, u) for g, members in directory.members.items() for u in members),
    )
    match_fields = {k: tuple(v) for k, v in facts.match_fields.items()}
    put_records(db, "user", target.users, match_fields.get("user", ()), facts.link_field)
    put_records(db, "group", target.groups, match_fields.get("group", ()), facts.link_field)
    put_rows(db, target.memberships)
    db.executemany(
        "INSERT OR IGNORE INTO pic_member_group (sys_id) VALUES (?)",
        ((s,) for s in sorted(target.member_groups)),
    )
    put_references(db, target.references)
    put_pending(db, facts.pending)
    put_meta(db, facts, match_fields)


def put_meta(
    db: sqlite3.Connection, facts: PictureFacts, match_fields: Mapping[str, Sequence[str]]
) -> None:
    values: dict[str, Any] = {
        "saved": True,
        "narrowable": facts.narrowable,
        "assignments": [list(a) for a in facts.assignments],
        "roles": dict(facts.roles),
        "match_fields": {k: list(v) for k, v in match_fields.items()},
        "link_field": facts.link_field,
        "listed": sorted(facts.listed),
        "service_principal": facts.service_principal,
    }
    db.executemany(
        "INSERT INTO pic_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
        "value=excluded.value",
        [(k, json.dumps(v)) for k, v in values.items()],
    )


def put_users(
    db: sqlite3.Connection, users: Mapping[str, Mapping[str, Any]], in_scope: Collection[str]
) -> None:
    scoped = set(in_scope)
    db.executemany(
        "INSERT INTO pic_user (id, manager, in_scope, value) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET manager=excluded.manager, in_scope=excluded.in_scope, "
        "value=excluded.value",
        ((i, _manager_id(u), int(i in scoped), _dumps(u)) for i, u in users.items()),
    )


def put_groups(db: sqlite3.Connection, groups: Mapping[str, Mapping[str, Any]]) -> None:
    db.executemany(
        "INSERT INTO pic_group (id, value) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET "
        "value=excluded.value",
        ((i, _dumps(g)) for i, g in groups.items()),
    )


def put_records(
    db: sqlite3.Connection,
    kind: str,
    records: Mapping[str, Record],
    fields: Sequence[str],
    link_field: str | None,
) -> None:
    """Insert or replace records of one kind, with their stamp and matching values indexed."""
    for chunk in chunks(records):
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM pic_match WHERE kind=? AND sys_id IN ({marks})", (kind, *chunk))
    db.executemany(
        "INSERT INTO pic_record (kind, sys_id, stamp, value) VALUES (?, ?, ?, ?) ON CONFLICT "
        "(kind, sys_id) DO UPDATE SET stamp=excluded.stamp, value=excluded.value",
        ((kind, s, _stamp(r, link_field), _dumps(r)) for s, r in records.items()),
    )
    db.executemany(
        "INSERT INTO pic_match (kind, field, value, sys_id) VALUES (?, ?, ?, ?)",
        (
            (kind, name, folded, s)
            for s, r in records.items()
            for name in fields
            if (folded := fold(r.get(name, "")))
        ),
    )


def put_rows(db: sqlite3.Connection, rows: Mapping[str, Record]) -> None:
    db.executemany(
        "INSERT INTO pic_row (sys_id, group_sys, user_sys, value) VALUES (?, ?, ?, ?) ON "
        "CONFLICT (sys_id) DO UPDATE SET group_sys=excluded.group_sys, "
        "user_sys=excluded.user_sys, value=excluded.value",
        ((s, r.get("group", ""), r.get("user", ""), _dumps(r)) for s, r in rows.items()),
    )


def put_references(db: sqlite3.Connection, references: Mapping[str, Mapping[str, str]]) -> None:
    db.executemany(
        "INSERT INTO pic_reference (tbl, name, sys_id) VALUES (?, ?, ?) ON CONFLICT (tbl, name) "
        "DO UPDATE SET sys_id=excluded.sys_id",
        ((t, n, s) for t, names in references.items() for n, s in names.items()),
    )


def put_pending(db: sqlite3.Connection, pending: Mapping[str, Collection[str]]) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO pic_pending (object_type, directory_id) VALUES (?, ?)",
        ((kind, d) for kind, ids in pending.items() for d in ids),
    )


def fold(value: str) -> str:
    """A matching value as matching compares it."""
    return str(value or "").strip().lower()


def chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for i in ids:
        batch.append(i)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _stamp(record: Record, link_field: str | None) -> str | None:
    return (record.get(link_field) or None) if link_field else None


def _manager_id(user: Mapping[str, Any]) -> str | None:
    manager = user.get("manager")
    return str(manager.get("id")) if isinstance(manager, Mapping) and manager.get("id") else None


def _dumps(value: Any) -> str:
    """A row's JSON (a record kept compactly, as a write's answer is, goes as its dict)."""
    if isinstance(value, Mapping) and not isinstance(value, dict):
        value = dict(value.items())
    return json.dumps(value, separators=(",", ":"))
