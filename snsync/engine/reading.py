"""The read phase of a cycle: one complete picture of both sides, read fully or incrementally.

A full read lists everything (after taking delta links, so that nothing changed during the read
is lost). An incremental read starts from the picture the last cycle saved, applies Graph delta
rounds and the ServiceNow records changed since the watermark by anyone but snsync, and re-lists
only the app's assignments. Either way the picture ends with the membership rows of every group
the cycle manages, so that planning needs no further read: the same pure planner then compares
the same kind of picture, which is why an incremental cycle leaves ServiceNow as a full one would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from snsync import background
from snsync.config import AttributeMapping, Config
from snsync.engine.approvals import trust_from_config
from snsync.engine.directory import (
    assigned_groups,
    build_snapshot,
    refuse_over_long,
    with_shared_ids,
)
from snsync.engine.narrow import Drift, Narrowing, narrow_block, read_drift, read_narrowed
from snsync.engine.plan import (
    cycle_options,
    make_group_mapper,
    make_mapper,
    managed_group_ids,
)
from snsync.engine.ports import Ports
from snsync.engine.trust import trust_fields
from snsync.errors import DeltaExpired
from snsync.graph.delta import (
    apply_group_changes,
    apply_user_changes,
    group_delta_select,
    user_delta_select,
)
from snsync.graph.opening import Opening
from snsync.graph.source import graph_select, group_select
from snsync.mapping.expressions import parse, referenced_attributes
from snsync.mapping.mapper import Mapper
from snsync.model import (
    AppScope,
    Assignment,
    DeltaLinks,
    DictView,
    ObjectType,
    Picture,
    Progress,
    Record,
    SourceCache,
    TargetSnapshot,
)

OVERLAP = dt.timedelta(minutes=5)  # clock skew between ServiceNow nodes, slow transactions
SN_TIME = "%Y-%m-%d %H:%M:%S"
log = logging.getLogger(__name__)
MEMBER_FIELDS = ("user", "group", "sys_created_by")  # the creator decides whose a row is
GROUP = ObjectType.GROUP
READING_SN = "reading ServiceNow"


@dataclass(frozen=True)
class Reading:
    """What one cycle read, and how: the picture, the raw directory, where deltas continue."""

    mode: str  # full | incremental
    reason: str
    picture: Picture
    cache: SourceCache  # the directory rows to keep (a narrowed read: of its focus only)
    links: DeltaLinks
    narrowing: Narrowing | None = None  # only the objects changes touch were read
    assignments: tuple[Assignment, ...] = ()  # the app's, as read (kept to see what changed)
    roles: Mapping[str, str] = field(default_factory=dict)  # app role id -> value
    listed: frozenset[str] = frozenset()  # every assigned group (their members were read)
    service_principal: str = ""  # the app's, as read (the next incremental cycle asks by id)

    @classmethod
    def of(
        cls,
        mode: str,
        reason: str,
        picture: Picture,
        cache: SourceCache,
        links: DeltaLinks,
        app: AppScope,
        narrowing: Narrowing | None = None,
    ) -> Reading:
        return cls(
            mode,
            reason,
            picture,
            cache,
            links,
            narrowing,
            app.assignments,
            dict(app.roles),
            service_principal=app.service_principal_id,
        )


def read_picture(
    config: Config, ports: Ports, progress: Progress | None = None, force_full: bool = False
) -> Reading:
    """Read incrementally when the saved state allows it, else (or on an expired delta) fully;
    then the membership rows of the managed groups the picture does not hold yet."""
    mode, reason = choose_mode(config, ports, force_full)
    reading = None
    if mode == "incremental":
        try:
            reading = read_incremental(config, ports, progress)
        except DeltaExpired as exc:
            reason = "the Graph delta link expired (400 syncStateNotFound or 410)"
            if exc.status is not None:
                log.warning("%s: this cycle reads everything instead (a full cycle)", reason)
    if reading is None:
        reading = read_full(config, ports, progress, reason)
    return with_member_rows(config, ports, reading)


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


def choose_mode(config: Config, ports: Ports, force_full: bool) -> tuple[str, str]:
    """Full or incremental, and why."""
    state = ports.state
    if force_full:
        return "full", "--full was asked for"
    basis = state.sync_basis()
    marks = state.delta_links(), state.servicenow_watermark()
    if not basis or not all(marks) or not state.has_cached_picture():
        return "full", "first cycle, or the state was reset or is new"
    if basis.fingerprint != fingerprint(config):
        return "full", "the mappings, scope or connection settings changed"
    if ports.clock() - basis.last_full >= config.schedule.full_every:
        return "full", "schedule.full_every has passed since the last full cycle"
    return "incremental", "changes since the last cycle"


def read_full(config: Config, ports: Ports, progress: Progress | None, reason: str) -> Reading:
    """List everything on both sides. ServiceNow's tables are read while Graph is (neither
    depends on the other); on Graph, the users' pages (the longest chain) run beside the app's
    assignments, its groups' members (parallel `$batch`) and the assigned groups."""
    directory = ports.directory
    progress = shared(progress)
    attributes, group_attributes = source_attributes(config), source_attributes(config, "group")
    servicenow = start_target_reads(config, ports, progress)
    links = directory.latest_delta_links(
        user_select_for(attributes), group_delta_select(group_select(group_attributes))
    )
    group_notes: list[str] = []

    def groups_side() -> tuple[AppScope, list[dict[str, Any]]]:
        app = directory.app_scope(progress)
        wanted = assigned_groups(app, config.scope)
        return app, directory.groups(wanted, group_attributes, group_notes)

    graph_groups = background.start(groups_side, "snsync-read-groups")
    incomplete: list[str] = []
    users = directory.users(attributes, progress, incomplete)
    app, groups = background.result(graph_groups, "reading the app's groups from Graph")
    incomplete += group_notes
    limit = config.limits.max_attribute_length
    (users, refused), (groups, refused_groups) = (
        refuse_over_long(users, limit),
        refuse_over_long(groups, limit),
    )
    refused.update(refused_groups)
    app = with_shared_ids(app, users)
    source = build_snapshot(users, app, config.scope, groups, incomplete, refused=refused)
    snapshot = TargetSnapshot(*(background.result(f, READING_SN) for f in servicenow))
    cache = SourceCache(  # the objects as read (refuse_over_long made them ours): no copy
        DictView({str(u["id"]): u for u in users}),
        {str(g["id"]): g for g in groups},
        dict(app.group_members),
    )
    return Reading.of("full", reason, Picture(source, snapshot), cache, links, app)


def start_target_reads(
    config: Config, ports: Ports, progress: Progress | None
) -> tuple[Future[Any], Future[Any], Future[Any]]:
    """sys_user, the reference tables and sys_user_group, each read in a thread of its own:
    the futures of TargetSnapshot's first three fields, in its order."""
    target = ports.target
    user_fields = target_fields(make_mapper(config.mappings), "user_name")
    group_fields = target_fields(make_group_mapper(config), "name")
    tables = reference_tables([*config.mappings.users, *config.mappings.groups])
    return (
        background.start(lambda: target.users(user_fields, progress), "snsync-read-users"),
        background.start(lambda: target.references(tables), "snsync-read-references"),
        background.start(lambda: target.groups(group_fields), "snsync-read-groups-sn"),
    )


def user_select_for(attributes: set[str]) -> str:
    """The users/delta `$select` for these attributes (with manager when a mapping reads it)."""
    return user_delta_select(graph_select(attributes), "manager" in attributes)


def shared(progress: Progress | None) -> Progress | None:
    """`progress` callable from several reading threads at once (one call at a time)."""
    if progress is None:
        return None
    lock = threading.Lock()
    report = progress

    def locked(what: str, count: int) -> None:
        with lock:
            report(what, count)

    return locked


def read_incremental(config: Config, ports: Ports, progress: Progress | None) -> Reading:
    """Bring the last cycle's picture up to date from Graph delta and ServiceNow drift:
    narrowly (engine/narrow.py: only the rows the changes touch) when the config and the saved
    picture allow it, else the whole cached picture. ServiceNow's drift reads (one Batch API
    request) run beside Graph's opening reads (one `$batch`): neither needs the other."""
    directory, state = ports.directory, ports.state
    marks = state.delta_links()
    if marks is None:
        raise DeltaExpired("no delta link saved", service="graph")
    since = _since(state.servicenow_watermark() or "")
    rows = state.picture_rows()
    meta, tables = rows.meta(), sorted(rows.references())
    drift = background.start(lambda: read_drift(config, ports, since, tables), "snsync-drift")
    try:
        # An expired link (400 syncStateNotFound or 410) raises DeltaExpired (graph client).
        opening = directory.opening(marks, str(meta.get("service_principal") or ""))
    except BaseException:
        _settle(drift)  # the full read that follows reads ServiceNow again
        raise

    def drifted() -> Drift:
        return background.result(drift, READING_SN)

    block = narrow_block(config)
    if block is None and not meta.get("narrowable"):
        block = "the last cycle did not see ServiceNow whole"
    narrowed = read_narrowed(config, ports, progress, opening, drifted) if block is None else None
    if block is not None:
        log.info("this incremental cycle reads the whole cached picture: %s", block)
    if narrowed is None:
        return read_whole_incremental(config, ports, progress, opening, drifted())
    picture, cache, narrowing, app = narrowed
    links = DeltaLinks(opening.users.delta_link, opening.groups.delta_link)
    return Reading.of(
        "incremental", "changes since the last cycle", picture, cache, links, app, narrowing
    )


def _settle(future: Future[Any]) -> None:
    """Wait for a read no longer needed to end; its outcome is dropped."""
    with contextlib.suppress(Exception):
        background.result(future, READING_SN)


def read_whole_incremental(
    config: Config,
    ports: Ports,
    progress: Progress | None,
    opening: Opening,
    drift: Drift,
) -> Reading:
    """The whole cached picture brought up to date with the delta rounds and the drift."""
    directory, state = ports.directory, ports.state
    saved = state.cached_picture()
    users_round, groups_round = opening.users, opening.groups
    cached = saved.directory
    users = apply_user_changes(cached.users, users_round.items)
    groups, members, touched = apply_group_changes(
        cached.groups, cached.members, groups_round.items
    )
    # Nested memberships cannot be followed through a delta of direct members: re-list them.
    known = {} if (config.scope.expand_nested_groups and touched) else members
    app = directory.app_scope(progress, known_members=known, opening=opening)
    incomplete: list[str] = []
    wanted = assigned_groups(app, config.scope)
    group_list = directory.groups(
        wanted, source_attributes(config, "group"), incomplete, known=groups
    )
    limit = config.limits.max_attribute_length
    (user_list, refused), (group_list, refused_groups) = (
        refuse_over_long(list(users.values()), limit),
        refuse_over_long(group_list, limit),
    )
    refused.update(refused_groups)
    users = {str(u["id"]): dict(u) for u in user_list}
    source = build_snapshot(user_list, app, config.scope, group_list, incomplete, refused=refused)
    target = drifted_target(saved.target, drift)
    cache = SourceCache(users, {str(g["id"]): dict(g) for g in group_list}, dict(app.group_members))
    links = DeltaLinks(users_round.delta_link, groups_round.delta_link)
    reason = "changes since the last cycle"
    return Reading.of("incremental", reason, Picture(source, target), cache, links, app)


def with_member_rows(config: Config, ports: Ports, reading: Reading) -> Reading:
    """The picture with the membership rows of exactly the groups the cycle manages."""
    source, target = reading.picture.source, reading.picture.target
    narrowed = reading.narrowing
    links = {GROUP: narrowed.links[GROUP] if narrowed else ports.state.links(GROUP)}
    options = cycle_options(config, now=ports.clock(), trust=trust_from_config(config))
    managed = managed_group_ids(source, target, links, options)
    unread = [g for g in managed if g not in target.member_groups]
    # A narrowed picture holds some groups only: the others keep their rows as cached.
    unmanaged = (set(target.groups) if narrowed else target.member_groups) - set(managed)
    rows = {k: r for k, r in target.memberships.items() if r.get("group") not in unmanaged}
    for row in ports.target.memberships(unread) if unread else ():
        rows[row["sys_id"]] = row  # as read, with its creator (trust rules read it)
    # Rows are kept only for the groups read here: a group left out (unassigned) must be read
    # again when it returns, or its rows would be created a second time.
    member_groups = (target.member_groups - unmanaged) | set(unread)
    complete = replace(target, memberships=rows, member_groups=frozenset(member_groups))
    return replace(reading, picture=Picture(source, complete))


def drifted_target(cached: TargetSnapshot, drift: Drift) -> TargetSnapshot:
    """The cached ServiceNow side, updated with what others changed since the watermark."""
    users, groups = dict(cached.users), dict(cached.groups)
    rows = dict(cached.memberships)
    references = {table: dict(names) for table, names in cached.references.items()}
    for row in drift.users:
        users[row["sys_id"]] = row
    for row in drift.groups:
        groups[row["sys_id"]] = row
    for row in drift.rows:
        if row.get("group") in cached.member_groups:
            rows[row["sys_id"]] = subset(row, MEMBER_FIELDS)
    for table in sorted(references):
        for row in drift.references.get(table, ()):
            if row.get("name"):
                references[table][row["name"].strip().lower()] = row["sys_id"]
    return TargetSnapshot(users, references, groups, rows, cached.member_groups)


def target_fields(mapper: Mapper, name_field: str) -> list[str]:
    """The fields a cycle reads from a table (sys_updated_on: the incremental watermark)."""
    extra = [mapper.link_field] if mapper.link_field else []
    trust = trust_fields(name_field)
    return list(
        dict.fromkeys([*mapper.targets, *extra, name_field, "active", "sys_updated_on", *trust])
    )


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


def reference_tables(mappings: Iterable[AttributeMapping]) -> set[str]:
    """Tables that mappings resolve display values against (department, location, ...)."""
    return {m.reference for m in mappings if m.reference}


def subset(record: Mapping[str, str], fields: Iterable[str]) -> dict[str, str]:
    """The fields of a record the cached picture keeps."""
    keep = {"sys_id", "sys_updated_on", *fields}
    return {k: v for k, v in record.items() if k in keep}


def _since(watermark: str) -> str:
    try:
        moment = dt.datetime.strptime(watermark, SN_TIME)
    except (TypeError, ValueError):
        return "1970-01-01 00:00:00"
    return (moment - OVERLAP).strftime(SN_TIME)


def watermark(*tables: Mapping[str, Record]) -> str:
    """The newest sys_updated_on of the records: where the next drift read starts."""
    stamps = [r.get("sys_updated_on", "") for t in tables for r in t.values()]
    return max((s for s in stamps if s), default="1970-01-01 00:00:00")
