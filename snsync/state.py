"""The state file (SQLite): links between directory objects and ServiceNow records, cycles, and
the provisioning log. Schema versioned, migrated forward on open. No secret is ever stored here."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from snsync.engine.model import Result
from snsync.errors import ConfigError, LockedError

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE links (
        object_type TEXT NOT NULL,
        directory_id TEXT NOT NULL,
        sys_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (object_type, directory_id)
    );
    CREATE TABLE cycles (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at REAL NOT NULL,
        ended_at REAL,
        kind TEXT NOT NULL,
        outcome TEXT,
        counts TEXT,
        requests TEXT
    );
    CREATE TABLE log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cycle_id INTEGER,
        time REAL NOT NULL,
        object_type TEXT NOT NULL,
        directory_id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        sys_id TEXT,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        message TEXT NOT NULL,
        changes TEXT NOT NULL
    );
    CREATE INDEX log_cycle ON log (cycle_id);
    CREATE INDEX log_object ON log (directory_id);
    """,
    """
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE escrow (
        object_type TEXT NOT NULL,
        directory_id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        failures INTEGER NOT NULL,
        first_failed REAL NOT NULL,
        last_failed REAL NOT NULL,
        next_attempt REAL NOT NULL,
        reason TEXT,
        message TEXT NOT NULL,
        PRIMARY KEY (object_type, directory_id)
    );
    """,
    """
    CREATE TABLE cache (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    """,
)


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
class EscrowEntry:
    """An object that failed and waits for its next attempt."""

    object_type: str
    directory_id: str
    display_name: str
    failures: int
    first_failed: float
    last_failed: float
    next_attempt: float
    reason: str | None
    message: str


def backoff_seconds(failures: int, backoff: Sequence[int]) -> float:
    """Wait before the next attempt: none after a first failure (the next cycle retries), then
    the back-off steps in turn, the last one repeating (Microsoft: 6 h, 12 h, 24 h, daily)."""
    if failures <= 1 or not backoff:
        return 0.0
    return float(backoff[min(failures - 2, len(backoff) - 1)])


@dataclass(frozen=True)
class LogFilter:
    """What `snsync logs` asks for."""

    user: str | None = None
    action: str | None = None
    status: str | None = None
    cycle: int | None = None
    since: float | None = None
    limit: int = 200


class State:
    """An open state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"state.path: '{path}' is not a usable snsync state file: {exc}"
            ) from None
        except OSError as exc:
            raise ConfigError(f"state.path: cannot create '{path}': {exc.strerror}") from None
        with suppress(OSError):
            os.chmod(path, 0o600)

    def close(self) -> None:
        self.db.close()

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise ConfigError(
                f"state.path: '{self.path}' was written by a newer snsync (schema {version}); "
                "upgrade snsync"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                _run_script(self.db, script)
                self.db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # links
    def links(self, object_type: str) -> dict[str, str]:
        """directory id -> sys_id for one object type."""
        rows = self.db.execute(
            "SELECT directory_id, sys_id FROM links WHERE object_type=?", (object_type,)
        )
        return {d: s for d, s in rows}

    def save_links(self, object_type: str, links: Mapping[str, str]) -> None:
        """Insert or replace links."""
        now = time.time()
        with self.transaction():
            self.db.executemany(
                "INSERT INTO links (object_type, directory_id, sys_id, created_at) VALUES "
                "(?, ?, ?, ?) ON CONFLICT (object_type, directory_id) DO UPDATE SET "
                "sys_id=excluded.sys_id",
                [(object_type, d, s, now) for d, s in links.items()],
            )

    def drop_links(self, object_type: str, directory_ids: Iterable[str]) -> None:
        with self.transaction():
            self.db.executemany(
                "DELETE FROM links WHERE object_type=? AND directory_id=?",
                [(object_type, d) for d in directory_ids],
            )

    # small named values: quarantine, held disables, notification suppression, watermarks
    def get(self, key: str) -> Any:
        """A stored JSON value, or None."""
        row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        """Store a JSON value (None deletes it)."""
        if value is None:
            self.db.execute("DELETE FROM kv WHERE key=?", (key,))
            return
        self.db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value=excluded.value",
            (key, json.dumps(value)),
        )

    def keys(self, prefix: str) -> list[str]:
        rows = self.db.execute("SELECT key FROM kv WHERE key LIKE ?", (prefix + "%",))
        return [r[0] for r in rows]

    # notification suppression (the SentStore of snsync.notify)
    def last_sent(self, key: str) -> float | None:
        value = self.get(f"notify:{key}")
        return float(value) if value is not None else None

    def mark_sent(self, key: str, when: float) -> None:
        self.put(f"notify:{key}", when)

    # what the last cycle saw of both sides, for incremental cycles
    def cache(self, kind: str) -> dict[str, Any]:
        """key -> value for one kind of cached object."""
        row = self.db.execute("SELECT value FROM cache WHERE kind=? AND key=''", (kind,)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def has_cache(self, kind: str) -> bool:
        """Whether a kind is cached, without loading it."""
        row = self.db.execute("SELECT 1 FROM cache WHERE kind=? AND key=''", (kind,)).fetchone()
        return row is not None

    def replace_cache(self, kinds: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace whole kinds of the cache in one transaction. Each kind is one JSON document:
        one parse of a large document is far cheaper than thousands of small ones."""
        with self.transaction():
            for kind, entries in kinds.items():
                self.db.execute(
                    "INSERT INTO cache (kind, key, value) VALUES (?, '', ?) ON CONFLICT (kind, key)"
                    " DO UPDATE SET value=excluded.value",
                    (kind, json.dumps(entries, separators=(",", ":"))),
                )

    # failing objects retried with back-off
    def escrow(self) -> list[EscrowEntry]:
        rows = self.db.execute(
            "SELECT object_type, directory_id, display_name, failures, first_failed, "
            "last_failed, next_attempt, reason, message FROM escrow ORDER BY next_attempt"
        )
        return [EscrowEntry(*row) for row in rows]

    def update_escrow(
        self, failed: Sequence[Result], succeeded: Sequence[Result], backoff: Sequence[int]
    ) -> None:
        """Count failures up with a growing back-off; forget objects that succeeded."""
        now = time.time()
        current = {(e.object_type, e.directory_id): e for e in self.escrow()}
        with self.transaction():
            for r in succeeded:
                self.db.execute(
                    "DELETE FROM escrow WHERE object_type=? AND directory_id=?",
                    (r.item.object_type, r.item.directory_id),
                )
            for r in failed:
                before = current.get((r.item.object_type, r.item.directory_id))
                failures = (before.failures if before else 0) + 1
                next_attempt = now + backoff_seconds(failures, backoff)
                self.db.execute(
                    "INSERT INTO escrow VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (object_type, "
                    "directory_id) DO UPDATE SET failures=excluded.failures, last_failed="
                    "excluded.last_failed, next_attempt=excluded.next_attempt, reason="
                    "excluded.reason, message=excluded.message, display_name=excluded.display_name",
                    (
                        r.item.object_type,
                        r.item.directory_id,
                        r.item.display_name,
                        failures,
                        before.first_failed if before else now,
                        now,
                        next_attempt,
                        r.reason,
                        r.message,
                    ),
                )

    def clear_escrow(self) -> int:
        return int(self.db.execute("DELETE FROM escrow").rowcount)

    def link_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT object_type, count(*) FROM links GROUP BY object_type")
        return {kind: int(n) for kind, n in rows}

    # cycles
    def start_cycle(self, kind: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO cycles (started_at, kind) VALUES (?, ?)", (time.time(), kind)
        )
        return int(cursor.lastrowid or 0)

    def set_cycle_kind(self, cycle_id: int, kind: str) -> None:
        self.db.execute("UPDATE cycles SET kind=? WHERE id=?", (kind, cycle_id))

    def end_cycle(
        self, cycle_id: int, outcome: str, counts: Mapping[str, Any], requests: Mapping[str, Any]
    ) -> None:
        self.db.execute(
            "UPDATE cycles SET ended_at=?, outcome=?, counts=?, requests=? WHERE id=?",
            (time.time(), outcome, json.dumps(counts), json.dumps(requests), cycle_id),
        )

    def cycles(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, started_at, ended_at, kind, outcome, counts, requests FROM cycles "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": r[0],
                "started_at": r[1],
                "ended_at": r[2],
                "kind": r[3],
                "outcome": r[4],
                "counts": json.loads(r[5] or "{}"),
                "requests": json.loads(r[6] or "{}"),
            }
            for r in rows
        ]

    # provisioning log
    def log_results(self, cycle_id: int | None, results: Sequence[Result]) -> None:
        """One provisioning-log row per result."""
        now = time.time()
        rows = [
            (
                cycle_id,
                now,
                r.item.object_type,
                r.item.directory_id,
                r.item.display_name,
                r.sys_id,
                r.item.action.value,
                r.status.value,
                r.reason,
                r.message,
                json.dumps(
                    [
                        {"field": c.field, "old": c.old, "new": c.new, "label": c.label}
                        for c in r.item.changes
                    ]
                ),
            )
            for r in results
        ]
        with self.transaction():
            self.db.executemany(
                "INSERT INTO log (cycle_id, time, object_type, directory_id, display_name, sys_id,"
                " action, status, reason, message, changes) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def log_entries(self, query: LogFilter) -> list[LogEntry]:
        where: list[str] = ["1=1"]
        args: list[Any] = []
        if query.user:
            # A UPN names a user by the directory as last read; the log keeps the object id.
            where.append(
                "(directory_id=? OR lower(display_name)=lower(?) OR changes LIKE ? OR "
                "directory_id IN (SELECT j.key FROM cache, json_each(cache.value) AS j WHERE "
                "cache.kind='src_user' AND "
                "lower(json_extract(j.value, '$.userPrincipalName'))=lower(?)))"
            )
            args += [query.user, query.user, f'%"{query.user}"%', query.user]
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
        sql = (
            "SELECT id, cycle_id, time, object_type, directory_id, display_name, sys_id, action,"
            f" status, reason, message, changes FROM log WHERE {' AND '.join(where)}"
            " ORDER BY id DESC LIMIT ?"
        )
        rows = self.db.execute(sql, (*args, query.limit)).fetchall()
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


def _run_script(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


class RunLock:
    """One run at a time: an exclusive lock beside the state file, naming its holder."""

    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self._file: TextIO | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown holder"
            handle.close()
            raise LockedError(
                f"another snsync run holds {self.path} ({holder}); this run did nothing. "
                "If that process is gone the lock frees itself"
            ) from None
        # flock locks die with their process, so a killed run leaves nothing stale to clear.
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
