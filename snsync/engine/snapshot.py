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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from snsync.config import AttributeMapping, Config
from snsync.connections import Connections
from snsync.engine.model import Action, Record, Result, SourceSnapshot, Status, TargetSnapshot
from snsync.errors import BadRequestError, NotFoundError
from snsync.graph import source
from snsync.graph.delta import (
    SYNC_STATE_GONE,
    DeltaLinks,
    SourceCache,
    apply_group_changes,
    apply_user_changes,
    group_delta_select,
    latest_links,
    user_delta_select,
)
from snsync.mapping.expressions import parse, referenced_attributes
from snsync.servicenow import target as target_io
from snsync.state import State

Progress = Callable[[str, int], None]
SYNC_KEY = "sync"
USERS_LINK, GROUPS_LINK, SN_WATERMARK = (
    "watermark:users",
    "watermark:groups",
    "watermark:servicenow",
)
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
    sync = state.get(SYNC_KEY)
    links = state.get(USERS_LINK), state.get(GROUPS_LINK), state.get(SN_WATERMARK)
    if not sync or not all(links) or not state.has_cache("src_user"):
        return "full", "first cycle, or the state was reset or is new"
    if sync.get("fingerprint") != fingerprint(config):
        return "full", "the mappings, scope or connection settings changed"
    if now - float(sync.get("last_full", 0)) >= config.schedule.full_every:
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
    groups = source.read_groups(conns.graph, app, config, _group_attributes(config), incomplete)
    snapshot = source.build_snapshot(users, app, config, groups, incomplete)
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
    cached = load_source_cache(state)
    try:
        users_round = conns.graph.delta(state.get(USERS_LINK)["link"])
        groups_round = conns.graph.delta(state.get(GROUPS_LINK)["link"])
    except (NotFoundError, BadRequestError) as exc:  # Graph sends 400 (or 410) syncStateNotFound
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
    group_list = source.read_groups(
        conns.graph, app, config, _group_attributes(config), incomplete, known=groups
    )
    snapshot = source.build_snapshot(list(users.values()), app, config, group_list, incomplete)
    target, rows, member_groups = _drifted_target(config, conns, state, user_fields, group_fields)
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


def require_full_next(state: State) -> None:
    """Make the next cycle a full one (it finds no users delta link to continue from)."""
    state.put(USERS_LINK, None)


def load_source_cache(state: State) -> SourceCache:
    members = {k: tuple(v) for k, v in state.cache("src_members").items()}
    return SourceCache(state.cache("src_user"), state.cache("src_group"), members)


def save_reading(
    state: State,
    config: Config,
    reading: Reading,
    target: TargetSnapshot,
    member_rows: Mapping[str, Record],
    results: Sequence[Result],
    fields: Mapping[str, Sequence[str]],
    member_groups: Iterable[str],
) -> None:
    """Keep what this cycle saw, updated by what it wrote, for the next incremental cycle."""
    users = dict(target.users)
    groups = dict(target.groups)
    rows = dict(member_rows)
    references = {t: dict(m) for t, m in target.references.items()}
    for r in results:
        if r.status is Status.FAILURE or not r.item.writes:
            continue
        kind = r.item.object_type
        if kind == "membership":
            if r.item.action is Action.DELETE and r.sys_id:
                rows.pop(r.sys_id, None)
            elif r.record:
                rows[r.record["sys_id"]] = _subset(r.record, ROW_FIELDS)
        elif kind in ("user", "group") and r.record:
            store = users if kind == "user" else groups
            store[r.record["sys_id"]] = _subset(r.record, fields[kind])
        elif r.record and r.sys_id:
            references.setdefault(kind, {})[r.item.display_name.lower()] = r.sys_id
    state.replace_cache(
        {
            "src_user": reading.cache.users,
            "src_group": reading.cache.groups,
            "src_members": {k: list(v) for k, v in reading.cache.members.items()},
            "tgt_user": users,
            "tgt_group": groups,
            "tgt_member": rows,
            "tgt_member_groups": dict.fromkeys(member_groups, 1),
            "ref": {
                f"{t}\x00{name}": sys_id
                for t, m in references.items()
                for name, sys_id in m.items()
            },
        }
    )
    now = time.time()
    state.put(USERS_LINK, {"link": reading.links.users, "saved_at": now})
    state.put(GROUPS_LINK, {"link": reading.links.groups, "saved_at": now})
    state.put(SN_WATERMARK, {"updated_on": _watermark(users, groups), "saved_at": now})
    previous = state.get(SYNC_KEY) or {}
    last_full = now if reading.mode == "full" else previous.get("last_full", now)
    state.put(SYNC_KEY, {"fingerprint": fingerprint(config), "last_full": last_full})


def _drifted_target(
    config: Config,
    conns: Connections,
    state: State,
    user_fields: Sequence[str],
    group_fields: Sequence[str],
) -> tuple[TargetSnapshot, dict[str, Record], frozenset[str]]:
    """The cached ServiceNow side, updated with what others changed since the watermark."""
    users: dict[str, Record] = state.cache("tgt_user")
    groups: dict[str, Record] = state.cache("tgt_group")
    rows: dict[str, Record] = state.cache("tgt_member")
    member_groups = frozenset(state.cache("tgt_member_groups"))
    references: dict[str, dict[str, str]] = {}
    for key, sys_id in state.cache("ref").items():
        table, name = key.split("\x00", 1)
        references.setdefault(table, {})[name] = sys_id
    since = _since(state.get(SN_WATERMARK)["updated_on"])
    me = config.servicenow.auth.username
    client = conns.servicenow
    changed = f"sys_updated_on>={since}^sys_updated_by!={me}"
    for row in client.read_all(target_io.USER_TABLE, user_fields, changed):
        users[row["sys_id"]] = row
    for row in client.read_all(target_io.GROUP_TABLE, group_fields, changed):
        groups[row["sys_id"]] = row
    added = f"sys_created_on>={since}^sys_created_by!={me}"
    for row in client.read_all(target_io.MEMBER_TABLE, list(ROW_FIELDS), added):
        if row.get("group") in member_groups:
            rows[row["sys_id"]] = _subset(row, ROW_FIELDS)
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


ROW_FIELDS = ("user", "group", "sys_created_by")  # the creator decides whose a row is (issue 9)


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
