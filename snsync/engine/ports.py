"""What the engine talks to, as small Protocols: the directory it reads (Graph), the target it
reads and writes (ServiceNow), the state it keeps, and the clock. The engine takes them as
arguments; `ports_for` builds the real ones from a command's connections, tests/unit/fakes.py
builds in-memory ones."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from snsync.config import Config
from snsync.connections import Connections
from snsync.graph.client import DeltaRound
from snsync.graph.opening import Opening
from snsync.graph.source import GraphDirectory
from snsync.model import (
    AppScope,
    CachedPicture,
    DeltaLinks,
    EscrowEntry,
    Held,
    Progress,
    Quarantine,
    Record,
)
from snsync.servicenow.batchread import Changed
from snsync.servicenow.target import ServiceNowTarget
from snsync.state import CycleRecord, PictureRows, State, SyncBasis


class Directory(Protocol):
    """The directory (Graph), read-only."""

    def latest_delta_links(self, user_select: str, group_select: str) -> DeltaLinks: ...

    def delta(self, link: str) -> DeltaRound: ...

    def opening(self, links: DeltaLinks, service_principal: str = "") -> Opening: ...

    def app_scope(
        self,
        progress: Progress | None = None,
        known_members: Mapping[str, tuple[str, ...]] | None = None,
        opening: Opening | None = None,
    ) -> AppScope: ...

    def users(
        self, attributes: set[str], progress: Progress | None, incomplete: list[str]
    ) -> Sequence[Mapping[str, Any]]: ...

    def groups(
        self,
        ids: Iterable[str],
        attributes: set[str],
        incomplete: list[str],
        known: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]: ...

    def user(self, ref: str, attributes: set[str]) -> dict[str, Any]: ...

    def group(self, group_id: str, attributes: set[str]) -> dict[str, Any]: ...

    def groups_named(self, name: str, attributes: set[str]) -> list[dict[str, Any]]: ...


class TargetReader(Protocol):
    """ServiceNow, as the read phase sees it."""

    def users(
        self, fields: Sequence[str], progress: Progress | None = None
    ) -> dict[str, Record]: ...

    def groups(self, fields: Sequence[str]) -> dict[str, Record]: ...

    def memberships(self, group_sys_ids: Iterable[str]) -> list[Record]: ...

    def references(self, tables: Iterable[str]) -> dict[str, dict[str, str]]: ...

    def changes_since(self, reads: Sequence[Changed], since: str) -> list[list[Record]]: ...

    def find(
        self, table: str, fields: Sequence[str], field: str, value: str
    ) -> Sequence[Record]: ...

    def get(self, table: str, sys_id: str, fields: Sequence[str] = ()) -> Record: ...

    def role_holders(
        self, table: str, holder: str, role_names: Collection[str] | None = None
    ) -> dict[str, tuple[str, ...]]: ...


class TargetWriter(Protocol):
    """ServiceNow, as the executor writes it."""

    def create(self, table: str, values: Mapping[str, str]) -> Record: ...

    def update(self, table: str, sys_id: str, values: Mapping[str, str]) -> Record: ...

    def delete(self, table: str, sys_id: str) -> None: ...


class Target(TargetReader, TargetWriter, Protocol):
    """ServiceNow, read and written."""


class StateStore(Protocol):
    """The state as the engine uses it (snsync.state.State)."""

    def links(self, object_type: str) -> dict[str, str]: ...

    def escrow(self) -> list[EscrowEntry]: ...

    def sync_basis(self) -> SyncBasis | None: ...

    def delta_links(self) -> DeltaLinks | None: ...

    def servicenow_watermark(self) -> str | None: ...

    def has_cached_picture(self) -> bool: ...

    def cached_picture(self) -> CachedPicture: ...

    def picture_rows(self) -> PictureRows: ...

    def links_for(self, object_type: str, directory_ids: Collection[str]) -> dict[str, str]: ...

    def links_to(self, object_type: str, sys_ids: Collection[str]) -> dict[str, str]: ...

    def pair_links_of(self, object_type: str, user_ids: Collection[str]) -> dict[str, str]: ...

    def link_count(self, object_type: str) -> int: ...

    def redaction_key(self) -> bytes | None: ...

    def start_cycle(self, kind: str) -> int: ...

    def set_cycle_kind(self, cycle_id: int, kind: str) -> None: ...

    def end_cycle(
        self, cycle_id: int, outcome: str, counts: Mapping[str, Any], requests: Mapping[str, Any]
    ) -> None: ...

    def record_cycle(self, record: CycleRecord) -> None: ...

    def held_disables(self) -> tuple[Held, ...]: ...

    def save_links(self, object_type: str, links: Mapping[str, str]) -> None: ...

    def require_full_next(self) -> None: ...

    def quarantine(self) -> Quarantine | None: ...

    def save_quarantine(self, quarantine: Quarantine | None) -> None: ...

    def auth_failures(self) -> int: ...

    def save_auth_failures(self, count: int) -> None: ...

    def auth_identity(self) -> str | None: ...

    def save_auth_identity(self, identity: str) -> None: ...

    def last_success(self) -> float | None: ...

    def save_last_success(self, when: float) -> None: ...

    def last_sent(self, key: str) -> float | None: ...

    def mark_sent(self, key: str, when: float) -> None: ...

    def approved_adoptions(self) -> dict[str, dict[str, str]]: ...


class Clock(Protocol):
    """Seconds since the epoch (time.time)."""

    def __call__(self) -> float: ...


@dataclass(frozen=True)
class Ports:
    """Everything one cycle talks to."""

    directory: Directory
    target: Target
    state: StateStore
    clock: Clock = time.time
    requests: Callable[[], dict[str, int]] = dict  # request counts so far, for the report
    account: str = ""  # snsync's own ServiceNow account: its writes are not drift


def ports_for(config: Config, conns: Connections, state: State) -> Ports:
    """The real ports of a command: Graph and ServiceNow through `conns`, the state file."""
    return Ports(
        GraphDirectory(conns.graph, config),
        ServiceNowTarget(conns.servicenow),
        state,
        time.time,
        lambda: requests_made(conns),
        config.servicenow.auth.username,
    )


def requests_made(conns: Connections) -> dict[str, int]:
    """Requests so far, by kind, for a cycle's report."""
    return {
        "graph_reads": conns.graph_http.counter.reads + conns.graph_http.counter.writes,
        "servicenow_reads": conns.servicenow_http.counter.reads,
        "servicenow_writes": conns.servicenow_http.counter.writes,
        "retries": conns.graph_http.counter.retries + conns.servicenow_http.counter.retries,
    }
