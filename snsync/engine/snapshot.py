"""Read both sides of a cycle, fully or incrementally, and keep what was read for the next one.

A full read lists everything (after taking delta links, so that nothing changed during the read
is lost). An incremental read starts from what the last cycle saw, applies Graph delta rounds and
the ServiceNow records changed since the watermark by anyone but snsync, and re-lists only the
app's assignments. Both produce the same snapshots, which the same pure planner compares: that
is why an incremental cycle leaves ServiceNow exactly as a full one would.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from snsync.config import AttributeMapping, Config
from snsync.connections import Connections
from snsync.engine.directory import assigned_groups, build_snapshot
from snsync.errors import NotFoundError
from snsync.graph import source
from snsync.graph.delta import (
    SYNC_STATE_GONE,
    apply_group_changes,
    apply_user_changes,
    group_delta_select,
    latest_links,
    user_delta_select,
)
from snsync.mapping.expressions import parse, referenced_attributes
from snsync.model import (
    GROUP_TABLE,
    MEMBER_TABLE,
    USER_TABLE,
    Action,
    CachedPicture,
    DeltaLinks,
    ObjectType,
    Progress,
    Record,
    Result,
    SourceCache,
    SourceSnapshot,
    Status,
    TargetSnapshot,
)
from snsync.servicenow import target as target_io
from snsync.state import State, Watermarks

OVERLAP = dt.timedelta(minutes=5)  # clock skew between ServiceNow nodes, slow transactions
SN_TIME = "%Y-%m-%d %H:%M:%S"


class DeltaExpired(Exception):
    """The stored delta link is no longer valid (410 syncStateNotFound): read fully."""


@dataclass(frozen=True)
class Reading:
    """What one cycle read, and how."""

    mode: str  # full | incremental
    reason: str
    snapshot: SourceSnapshot
    target: TargetSnapshot
    cache: SourceCache
    links: DeltaLinks
    member_rows: dict[str, Record]  # sys_user_grmember rows of the groups in member_groups
    member_groups: frozenset[str]
    requests: dict[str, int] = field(default_factory=dict)


def fingerprint(config: Config) -> str:
    """A hash of everything that changes what a full cycle would compute."""
    relevant = {
        "mappings": config.mappings.model_dump(mode="json"),
        "scope": config.scope.model_dump(mode="json"),
        "app": [config.graph.app_id, config.graph.service_principal_id, config.graph.tenant_id],
        "instance": config.servicenow.instance,
        "account": config.servicenow.auth.username,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def choose_mode(config: Config, state: State, force_full: bool, now: float) -> tuple[str, str]:
    """Full or incremental, and why."""
    if force_full:
        return "full", "--full was asked for"
    basis = state.sync_basis()
    marks = state.delta_links(), state.servicenow_watermark()
    if not basis or not all(marks) or not state.has_cached_picture():
        return "full", "first cycle, or the state was reset or is new"
    if basis.fingerprint != fingerprint(config):
        return "full", "the mappings, scope or connection settings changed"
    if now - basis.last_full >= config.schedule.full_every:
        return "full", "schedule.full_every has passed since the last full cycle"
    return "incremental", "changes since the last cycle"


def read_full(
    config: Config,
    conns: Connections,
    progress: Progress | None,
    user_fields: Sequence[str],
    group_fields: Sequence[str],
    reference_tables: Iterable[str],
    reason: str,
) -> Reading:
    """List everything on both sides."""
    attributes = _user_attributes(config)
    select = source.graph_select(attributes)
    group_select = source.group_select(_group_attributes(config))
    links = latest_links(
        conns.graph,
        user_delta_select(select, "manager" in attributes),
        group_delta_select(group_select),
    )
    app = source.read_app_scope(conns.graph, config, progress)
    incomplete: list[str] = []
    users = source.read_users(conns.graph, attributes, config.graph.page_size, progress, incomplete)
    wanted = assigned_groups(app, config.scope)
    groups = source.read_groups(conns.graph, wanted, _group_attributes(config), incomplete)
    snapshot = build_snapshot(users, app, config.scope, groups, incomplete)
    target = target_io.read_target(
        conns.servicenow, user_fields, reference_tables, group_fields, progress
    )
    cache = SourceCache(
        {str(u["id"]): dict(u) for u in users},
        {str(g["id"]): dict(g) for g in groups},
        dict(app.group_members),
    )
    return Reading("full", reason, snapshot, target, cache, links, {}, frozenset())


def read_incremental(
    config: Config,
    conns: Connections,
    state: State,
    progress: Progress | None,
    user_fields: Sequence[str],
    group_fields: Sequence[str],
) -> Reading:
    """Bring the last cycle's picture up to date from Graph delta and ServiceNow drift."""
    saved = state.cached_picture()
    cached = saved.directory
    marks = state.delta_links()
    if marks is None:
        raise DeltaExpired("no delta link saved")
    try:
        users_round = conns.graph.delta(marks.users)
        groups_round = conns.graph.delta(marks.groups)
    except NotFoundError as exc:
        if exc.code == SYNC_STATE_GONE or exc.status == 410:
            raise DeltaExpired(str(exc)) from None
        raise
    users = apply_user_changes(cached.users, users_round.items)
    groups, members, touched = apply_group_changes(
        cached.groups, cached.members, groups_round.items
    )
    # Nested memberships cannot be followed through a delta of direct members: re-list them.
    known = {} if (config.scope.expand_nested_groups and touched) else members
    app = source.read_app_scope(conns.graph, config, progress, known_members=known)
    incomplete: list[str] = []
    wanted = assigned_groups(app, config.scope)
    group_list = source.read_groups(
        conns.graph, wanted, _group_attributes(config), incomplete, known=groups
    )
    snapshot = build_snapshot(list(users.values()), app, config.scope, group_list, incomplete)
    since = _since(state.servicenow_watermark() or "")
    target, rows, member_groups = _drifted_target(
        config, conns, saved.target, since, user_fields, group_fields
    )
    cache = SourceCache(users, {str(g["id"]): dict(g) for g in group_list}, dict(app.group_members))
    links = DeltaLinks(users_round.delta_link, groups_round.delta_link)
    return Reading(
        "incremental",
        "changes since the last cycle",
        snapshot,
        target,
        cache,
        links,
        rows,
        member_groups,
    )


def saved_picture(
    config: Config,
    reading: Reading,
    target: TargetSnapshot,
    member_rows: Mapping[str, Record],
    results: Sequence[Result],
    fields: Mapping[ObjectType, Sequence[str]],
    member_groups: Iterable[str],
) -> tuple[CachedPicture, Watermarks]:
    """What this cycle saw, updated by what it wrote, for the next incremental cycle."""
    users = dict(target.users)
    groups = dict(target.groups)
    rows = dict(member_rows)
    references = {t: dict(m) for t, m in target.references.items()}
    for r in results:
        if r.status is Status.FAILURE or not r.item.writes:
            continue
        kind = r.item.object_type
        if kind is ObjectType.MEMBERSHIP:
            if r.item.action is Action.DELETE and r.sys_id:
                rows.pop(r.sys_id, None)
            elif r.record:
                rows[r.record["sys_id"]] = _subset(r.record, ("user", "group"))
        elif kind in (ObjectType.USER, ObjectType.GROUP) and r.record:
            store = users if kind is ObjectType.USER else groups
            store[r.record["sys_id"]] = _subset(r.record, fields[kind])
        elif r.record and r.sys_id:
            table = r.item.reference_table
            references.setdefault(table, {})[r.item.display_name.lower()] = r.sys_id
    saved = TargetSnapshot(users, references, groups, rows, frozenset(member_groups))
    marks = Watermarks(
        reading.links, _watermark(users, groups), fingerprint(config), reading.mode == "full"
    )
    return CachedPicture(reading.cache, saved), marks


def _drifted_target(
    config: Config,
    conns: Connections,
    cached: TargetSnapshot,
    since: str,
    user_fields: Sequence[str],
    group_fields: Sequence[str],
) -> tuple[TargetSnapshot, dict[str, Record], frozenset[str]]:
    """The cached ServiceNow side, updated with what others changed since the watermark."""
    users = dict(cached.users)
    groups = dict(cached.groups)
    rows = dict(cached.memberships)
    member_groups = cached.member_groups
    references = {table: dict(names) for table, names in cached.references.items()}
    me = config.servicenow.auth.username
    client = conns.servicenow
    changed = f"sys_updated_on>={since}^sys_updated_by!={me}"
    for row in client.read_all(USER_TABLE, user_fields, changed):
        users[row["sys_id"]] = row
    for row in client.read_all(GROUP_TABLE, group_fields, changed):
        groups[row["sys_id"]] = row
    added = f"sys_created_on>={since}^sys_created_by!={me}"
    for row in client.read_all(MEMBER_TABLE, ["user", "group"], added):
        if row.get("group") in member_groups:
            rows[row["sys_id"]] = _subset(row, ("user", "group"))
    for table in sorted(references):
        for row in client.read_all(table, ["name"], f"sys_updated_on>={since}"):
            if row.get("name"):
                references[table][row["name"].strip().lower()] = row["sys_id"]
    return TargetSnapshot(users, references, groups), rows, member_groups


def _since(watermark: str) -> str:
    try:
        moment = dt.datetime.strptime(watermark, SN_TIME)
    except (TypeError, ValueError):
        return "1970-01-01 00:00:00"
    return (moment - OVERLAP).strftime(SN_TIME)


def _watermark(*tables: Mapping[str, Record]) -> str:
    stamps = [r.get("sys_updated_on", "") for t in tables for r in t.values()]
    return max((s for s in stamps if s), default="1970-01-01 00:00:00")


def _subset(record: Mapping[str, str], fields: Iterable[str]) -> dict[str, str]:
    keep = {"sys_id", "sys_updated_on", *fields}
    return {k: v for k, v in record.items() if k in keep}


def source_attributes(config: Config, object_type: str = "user") -> set[str]:
    """Every directory attribute the mappings (and, for users, the scoping filters) read."""
    mappings = config.mappings.users if object_type == "user" else config.mappings.groups
    names: set[str] = set()
    for m in mappings:
        if m.kind == "direct" and m.source:
            names.add(m.source)
        elif m.kind == "expression" and m.expression:
            names |= referenced_attributes(parse(m.expression))
    if object_type == "user":
        for clauses in config.scope.filters:
            names |= {c.attribute for c in clauses}
    return names


def _user_attributes(config: Config) -> set[str]:
    return source_attributes(config)


def _group_attributes(config: Config) -> set[str]:
    return source_attributes(config, "group")


def reference_tables(mappings: Iterable[AttributeMapping]) -> set[str]:
    """Tables that mappings resolve display values against (department, location, ...)."""
    return {m.reference for m in mappings if m.reference}
