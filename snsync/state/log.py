"""The provisioning log in the state file: one row per object per action, and the queries of
`snsync logs`."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from snsync.model import Result


@dataclass(frozen=True)
class LogEntry:
    """One provisioning-log row."""

    id: int
    cycle_id: int | None
    time: float
    object_type: str
    directory_id: str
    display_name: str
    sys_id: str | None
    action: str
    status: str
    reason: str | None
    message: str
    changes: list[dict[str, Any]]


@dataclass(frozen=True)
class LogFilter:
    """What `snsync logs` asks for."""

    user: str | None = None
    action: str | None = None
    status: str | None = None
    cycle: int | None = None
    since: float | None = None
    limit: int = 200
    until: float | None = None


# Directory users whose UPN, mail or display name (as last read) contains the text.
_USERS_MATCHING = (
    "SELECT id FROM pic_user WHERE ("
    + " OR ".join(
        f"instr(lower(coalesce(json_extract(value, '$.{name}'), '')), lower(?)) > 0"
        for name in ("userPrincipalName", "mail", "displayName")
    )
    + ")"
)


def write_log(db: sqlite3.Connection, cycle_id: int | None, results: Sequence[Result]) -> None:
    """One provisioning-log row per result (inside the caller's transaction)."""
    now = time.time()
    rows = (  # a generator: one row's JSON at a time, never the whole log of a cycle in memory
        (
            cycle_id,
            now,
            r.item.kind,
            r.item.directory_id,
            r.item.display_name,
            r.sys_id,
            r.item.action.value,
            r.status.value,
            r.reason,
            r.message,
            json.dumps(
                [
                    {
                        "field": c.field,
                        "old": c.shown_old,
                        "new": c.shown_new,
                        "label": c.shown_label,
                    }
                    for c in r.item.changes
                ]
            ),
        )
        for r in results
    )
    db.executemany(
        "INSERT INTO log (cycle_id, time, object_type, directory_id, display_name, sys_id,"
        " action, status, reason, message, changes) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def read_log(db: sqlite3.Connection, query: LogFilter) -> list[LogEntry]:
    """The newest `query.limit` rows matching the filter, oldest first."""
    where: list[str] = ["1=1"]
    args: list[Any] = []
    if query.user:
        # Part of a name, UPN or mail: the log keeps the object id and the display name, the
        # cached directory the UPN and mail as last read.
        where.append(
            "(directory_id=? OR instr(lower(display_name), lower(?)) > 0 OR "
            f"directory_id IN ({_USERS_MATCHING}))"
        )
        args += [query.user, query.user, query.user, query.user, query.user]
    for column, value in (("action", query.action), ("status", query.status)):
        if value:
            where.append(f"lower({column})=lower(?)")
            args.append(value)
    if query.cycle is not None:
        where.append("cycle_id=?")
        args.append(query.cycle)
    if query.since is not None:
        where.append("time>=?")
        args.append(query.since)
    if query.until is not None:
        where.append("time<=?")
        args.append(query.until)
    sql = (
        "SELECT id, cycle_id, time, object_type, directory_id, display_name, sys_id, action,"
        f" status, reason, message, changes FROM log WHERE {' AND '.join(where)}"
        " ORDER BY id DESC LIMIT ?"
    )
    rows = db.execute(sql, (*args, query.limit)).fetchall()
    return [_entry(row) for row in reversed(rows)]


def _entry(row: Sequence[Any]) -> LogEntry:
    return LogEntry(
        id=row[0],
        cycle_id=row[1],
        time=row[2],
        object_type=row[3],
        directory_id=row[4],
        display_name=row[5],
        sys_id=row[6],
        action=row[7],
        status=row[8],
        reason=row[9],
        message=row[10],
        changes=json.loads(row[11]),
    )
