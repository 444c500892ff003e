"""The state file's one owner: links between directory objects and ServiceNow records, cycles,
the provisioning log, the escrow of failing objects, one named method per remembered value
(delta links, ServiceNow watermark, held disables, quarantine, auth failures, last success, mail
suppression, approved adoptions, the checked config) and the cached picture. No other module
spells a key. No secret is stored here."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from snsync.model import (
    CachedPicture,
    DeltaLinks,
    EscrowEntry,
    Held,
    ObjectType,
    Quarantine,
    Result,
)
from snsync.state import picture
from snsync.state.db import Database
from snsync.state.log import LogEntry, LogFilter, read_log, write_log
from snsync.state.picture import PictureFacts
from snsync.state.rows import PictureChanges, PictureRows, link_queries_in, save_changes

_USERS_LINK, _GROUPS_LINK, _SN_WATERMARK = (
    "watermark:users",
    "watermark:groups",
    "watermark:servicenow",
)
_WATERMARKS = (_USERS_LINK, _GROUPS_LINK, _SN_WATERMARK)
_SYNC, _HELD, _QUARANTINE = "sync", "held", "quarantine"
_REDACTION_KEY = "redaction_key"
_AUTH_FAILURES, _LAST_SUCCESS, _NOTIFY = "auth_failures", "last_success_at", "notify:"
_APPROVED, _SERVICE_CHECKS = "approved_adoptions", "service_checks"
_AUTH_IDENTITY = "auth_identity"


@dataclass(frozen=True)
class SyncBasis:
    """What the last saved picture was computed with, and when the last full cycle ran."""

    fingerprint: str
    last_full: float


@dataclass(frozen=True)
class Watermarks:
    """Where the next incremental cycle continues from."""

    delta: DeltaLinks
    servicenow: str  # the newest sys_updated_on the cycle saw
    fingerprint: str
    full: bool  # this cycle read everything: it is the new last full cycle


@dataclass(frozen=True)
class LinkChanges:
    """Links one cycle made and links it found gone, for one object type."""

    save: Mapping[str, str] = field(default_factory=dict)
    drop: Sequence[str] = ()


@dataclass(frozen=True)
class CycleRecord:
    """Everything a cycle writes into the state when it ends, committed as one transaction."""

    cycle_id: int
    outcome: str
    counts: Mapping[str, Any]
    requests: Mapping[str, Any]
    results: Sequence[Result] = ()
    links: Mapping[ObjectType, LinkChanges] = field(default_factory=dict)
    retry_backoff: Sequence[int] | None = None  # None: the escrow is left as it is
    held: Sequence[Held] | None = None  # None: held disables are left as they are
    picture: CachedPicture | None = None
    watermarks: Watermarks | None = None
    full_next: bool = False  # make the next cycle a full one
    now: float | None = None  # the cycle's clock (back-off and watermark times); None: now
    redaction_key: bytes | None = None  # the key the picture's Redact() digests were made with
    picture_facts: PictureFacts | None = None  # kept beside the picture (scope, pending, ...)
    picture_changes: PictureChanges | None = None  # a narrowed cycle: only these rows change
    # The results as the escrow reads them (kind, id, name, status, reason, message), when
    # cheaper to go through than `results` (the log's, with every change resolved).
    escrow_results: Sequence[Result] | None = None


def backoff_seconds(failures: int, backoff: Sequence[int]) -> float:
    """Wait before the next attempt: none after a first failure (the next cycle retries), then
    the back-off steps in turn, the last one repeating (Microsoft: 6 h, 12 h, 24 h, daily)."""
    if failures <= 1 or not backoff:
        return 0.0
    return float(backoff[min(failures - 2, len(backoff) - 1)])


class State:
    """An open state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = Database(path)
        self.db = self._file.db

    def close(self) -> None:
        self._file.close()

    @property
    def schema_version(self) -> int:
        return self._file.schema_version

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested transactions join the outermost one."""
        with self._file.transaction():
            yield

    def record_cycle(self, record: CycleRecord) -> None:
        """Everything a finished cycle keeps, in one transaction."""
        with self.transaction():
            for object_type, changes in record.links.items():
                self.drop_links(object_type, changes.drop)
                self.save_links(object_type, changes.save)
            self.log_results(record.cycle_id, record.results)
            if record.retry_backoff is not None:
                # The failures are few; the writes that succeeded are streamed (a first sync's).
                results = record.results if record.escrow_results is None else record.escrow_results
                failed = [r for r in results if r.item.writes and r.status.value == "Failure"]
                done = (r for r in results if r.item.writes and r.status.value != "Failure")
                self.update_escrow(failed, done, record.retry_backoff, record.now)
            if record.held is not None:
                self.save_held_disables(record.held)
            if record.redaction_key is not None and self.redaction_key() is None:
                self._put(_REDACTION_KEY, record.redaction_key.hex())
            if record.picture_changes is not None:
                save_changes(
                    self.db, record.picture_changes, record.picture_facts or PictureFacts()
                )
            elif record.picture is not None:
                self.save_picture(record.picture, record.picture_facts)
            if record.watermarks is not None:
                self.save_watermarks(record.watermarks, record.now)
            if record.full_next:
                self.require_full_next()
            self.end_cycle(record.cycle_id, record.outcome, record.counts, record.requests)

    # links
    def links(self, object_type: str) -> dict[str, str]:
        """directory id -> sys_id for one object type."""
        rows = self.db.execute(
            "SELECT directory_id, sys_id FROM links WHERE object_type=?", (object_type,)
        )
        return {d: s for d, s in rows}

    def links_for(self, object_type: str, directory_ids: Collection[str]) -> dict[str, str]:
        """directory id -> sys_id for the given directory ids."""
        query = (
            "SELECT directory_id, sys_id FROM links WHERE object_type=? AND directory_id IN ({})"
        )
        return {d: s for d, s in link_queries_in(self.db, query, directory_ids, object_type)}

    def links_to(self, object_type: str, sys_ids: Collection[str]) -> dict[str, str]:
        """directory id -> sys_id of the links to the given records."""
        query = "SELECT directory_id, sys_id FROM links WHERE object_type=? AND sys_id IN ({})"
        return {d: s for d, s in link_queries_in(self.db, query, sys_ids, object_type)}

    def pair_links_of(self, object_type: str, user_ids: Collection[str]) -> dict[str, str]:
        """Membership links ('group:user' -> row sys_id) of the given users."""
        query = (
            "SELECT directory_id, sys_id FROM links WHERE object_type=? AND "
            "substr(directory_id, instr(directory_id, ':') + 1) IN ({})"
        )
        return {d: s for d, s in link_queries_in(self.db, query, user_ids, object_type)}

    def link_count(self, object_type: str) -> int:
        query = "SELECT count(*) FROM links WHERE object_type=?"
        return int(self.db.execute(query, (object_type,)).fetchone()[0])

    def save_links(self, object_type: str, links: Mapping[str, str]) -> None:
        """Insert or replace links."""
        now = time.time()
        with self.transaction():
            self.db.executemany(
                "INSERT INTO links (object_type, directory_id, sys_id, created_at) VALUES "
                "(?, ?, ?, ?) ON CONFLICT (object_type, directory_id) DO UPDATE SET "
                "sys_id=excluded.sys_id",
                ((object_type, d, s, now) for d, s in links.items()),
            )

    def drop_links(self, object_type: str, directory_ids: Iterable[str]) -> None:
        with self.transaction():
            self.db.executemany(
                "DELETE FROM links WHERE object_type=? AND directory_id=?",
                [(object_type, d) for d in directory_ids],
            )

    def link_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT object_type, count(*) FROM links GROUP BY object_type")
        return {kind: int(n) for kind, n in rows}

    def forget_links(self) -> dict[str, int]:
        """Drop every link (a full reset); how many of each kind were dropped."""
        counts = self.link_counts()
        self.db.execute("DELETE FROM links")
        return counts

    # where incremental cycles continue from
    def delta_links(self) -> DeltaLinks | None:
        """The Graph delta links saved by the last cycle, or None (the next cycle is full)."""
        users, groups = self._get(_USERS_LINK), self._get(_GROUPS_LINK)
        if not users or not groups:
            return None
        return DeltaLinks(str(users["link"]), str(groups["link"]))

    def servicenow_watermark(self) -> str | None:
        """The newest sys_updated_on the last cycle saw in ServiceNow."""
        value = self._get(_SN_WATERMARK)
        return str(value["updated_on"]) if value else None

    def sync_basis(self) -> SyncBasis | None:
        value = self._get(_SYNC)
        if not value:
            return None
        return SyncBasis(str(value.get("fingerprint", "")), float(value.get("last_full", 0)))

    def save_watermarks(self, marks: Watermarks, now: float | None = None) -> None:
        now = time.time() if now is None else now
        previous = self.sync_basis()
        with self.transaction():
            self._put(_USERS_LINK, {"link": marks.delta.users, "saved_at": now})
            self._put(_GROUPS_LINK, {"link": marks.delta.groups, "saved_at": now})
            self._put(_SN_WATERMARK, {"updated_on": marks.servicenow, "saved_at": now})
            last_full = now if marks.full or previous is None else previous.last_full
            self._put(_SYNC, {"fingerprint": marks.fingerprint, "last_full": last_full})

    def watermark_ages(self) -> dict[str, float]:
        """When each watermark (users, groups, servicenow) was saved."""
        ages: dict[str, float] = {}
        for key in _WATERMARKS:
            value = self._get(key)
            if isinstance(value, dict) and "saved_at" in value:
                ages[key.split(":", 1)[1]] = float(value["saved_at"])
        return ages

    def clear_watermarks(self) -> None:
        """Forget every watermark: the next cycle is full."""
        for key in _WATERMARKS:
            self._put(key, None)

    def require_full_next(self) -> None:
        """Make the next cycle a full one (it finds no users delta link to continue from)."""
        self._put(_USERS_LINK, None)

    # the cached picture
    def redaction_key(self) -> bytes | None:
        """The random key of this state file's Redact() digests (None until a cycle kept one)."""
        value = self._get(_REDACTION_KEY)
        return bytes.fromhex(value) if isinstance(value, str) else None

    def has_cached_picture(self) -> bool:
        return picture.has_picture(self.db)

    def cached_picture(self) -> CachedPicture:
        return picture.load_picture(self.db)

    def save_picture(self, cached: CachedPicture, facts: PictureFacts | None = None) -> None:
        with self.transaction():
            picture.save_picture(self.db, cached, facts)

    def picture_rows(self) -> PictureRows:
        """The cached picture, row by row (what a narrowed incremental cycle reads)."""
        return PictureRows(self.db)

    # held disables, quarantine, authentication failures, last success
    def held_disables(self) -> tuple[Held, ...]:
        return tuple(Held(**h) for h in self._get(_HELD) or [])

    def save_held_disables(self, held: Sequence[Held]) -> None:
        self._put(_HELD, [asdict(h) for h in held] or None)

    def quarantine(self) -> Quarantine | None:
        value = self._get(_QUARANTINE)
        if not value:
            return None
        until = float("inf") if value["until"] is None else float(value["until"])
        return Quarantine(float(value["since"]), until, int(value["level"]), str(value["reason"]))

    def save_quarantine(self, quarantine: Quarantine | None) -> None:
        if quarantine is None:
            self._put(_QUARANTINE, None)
            return
        data = asdict(quarantine)
        data["until"] = None if quarantine.stopped else quarantine.until
        self._put(_QUARANTINE, data)

    def auth_failures(self) -> int:
        return int(self._get(_AUTH_FAILURES) or 0)

    def save_auth_failures(self, count: int) -> None:
        self._put(_AUTH_FAILURES, count)

    # a digest of the credentials and endpoints the auth-failure count belongs to
    def auth_identity(self) -> str | None:
        value = self._get(_AUTH_IDENTITY)
        return str(value) if value is not None else None

    def save_auth_identity(self, identity: str) -> None:
        self._put(_AUTH_IDENTITY, identity)

    def last_success(self) -> float | None:
        value = self._get(_LAST_SUCCESS)
        return float(value) if value is not None else None

    def save_last_success(self, when: float) -> None:
        self._put(_LAST_SUCCESS, when)

    # adoptions an admin approved (`snsync approve --adoption`)
    def approved_adoptions(self) -> dict[str, dict[str, str]]:
        """Object type -> directory id -> the sys_id it may adopt."""
        stored = self._get(_APPROVED) or {}
        return {kind: dict(pairs) for kind, pairs in stored.items()}

    def save_approved_adoptions(self, approved: Mapping[str, Mapping[str, str]]) -> None:
        self._put(_APPROVED, {kind: dict(pairs) for kind, pairs in approved.items()} or None)

    # the config whose names were last checked against the services
    def service_check_mark(self) -> str | None:
        value = self._get(_SERVICE_CHECKS)
        return str(value) if value is not None else None

    def save_service_check_mark(self, mark: str) -> None:
        self._put(_SERVICE_CHECKS, mark)

    # notification suppression (the SentStore of snsync.notify)
    def last_sent(self, key: str) -> float | None:
        value = self._get(_NOTIFY + key)
        return float(value) if value is not None else None

    def mark_sent(self, key: str, when: float) -> None:
        self._put(_NOTIFY + key, when)

    # failing objects retried with back-off
    def escrow(self) -> list[EscrowEntry]:
        rows = self.db.execute(
            "SELECT object_type, directory_id, display_name, failures, first_failed, "
            "last_failed, next_attempt, reason, message FROM escrow ORDER BY next_attempt"
        )
        return [EscrowEntry(*row) for row in rows]

    def update_escrow(
        self,
        failed: Sequence[Result],
        succeeded: Iterable[Result],
        backoff: Sequence[int],
        now: float | None = None,
    ) -> None:
        """Count failures up with a growing back-off; forget objects that succeeded."""
        now = time.time() if now is None else now
        current = {(e.object_type, e.directory_id): e for e in self.escrow()}
        with self.transaction():
            self.db.executemany(
                "DELETE FROM escrow WHERE object_type=? AND directory_id=?",
                ((r.item.kind, r.item.directory_id) for r in succeeded),
            )
            for r in failed:
                before = current.get((r.item.kind, r.item.directory_id))
                failures = (before.failures if before else 0) + 1
                next_attempt = now + backoff_seconds(failures, backoff)
                self.db.execute(
                    "INSERT INTO escrow VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (object_type, "
                    "directory_id) DO UPDATE SET failures=excluded.failures, last_failed="
                    "excluded.last_failed, next_attempt=excluded.next_attempt, reason="
                    "excluded.reason, message=excluded.message, display_name=excluded.display_name",
                    (
                        r.item.kind,
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
        with self.transaction():
            write_log(self.db, cycle_id, results)

    def log_entries(self, query: LogFilter) -> list[LogEntry]:
        return read_log(self.db, query)

    def prune_log(self, before: float) -> int:
        """Drop provisioning-log rows older than `before`; how many went."""
        with self.transaction():
            return int(self.db.execute("DELETE FROM log WHERE time<?", (before,)).rowcount)

    # small named values, one JSON document each
    def _get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _put(self, key: str, value: Any) -> None:
        """Store a JSON value (None deletes it)."""
        if value is None:
            self.db.execute("DELETE FROM kv WHERE key=?", (key,))
            return
        self.db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value=excluded.value",
            (key, json.dumps(value)),
        )
