"""The SQLite file under the state: opened private (0600, and its -wal/-shm too), its schema
versioned by `PRAGMA user_version` and migrated forward on open, and transactions that nest (the
outermost one commits), so that recording a cycle is one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snsync.errors import ConfigError
from snsync.state import picture
from snsync.state.files import private_folder, private_umask, tighten

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
    picture.SCHEMA,  # 4: the cached picture as rows (the old JSON documents are dropped)
)
PICTURE_ROWS = 4


class Database:
    """One open state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._depth = 0
        try:
            private_folder(path.parent)
            tighten(*_files(path))
            with private_umask():
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
        tighten(*_files(path))

    def close(self) -> None:
        self.db.close()

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; a transaction inside another joins it."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise ConfigError(
                f"state.path: '{self.path}' was written by a newer snsync (schema {version}); "
                "upgrade snsync"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            if number == PICTURE_ROWS and version >= 3 and picture.old_layout_in_use(self.db):
                picture.migrated_from_old_layout()
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number}")


def _files(path: Path) -> tuple[Path, ...]:
    return (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
