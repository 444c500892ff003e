"""A narrowed incremental read: only the cached rows that this cycle's changes touch, so that a
cycle costs O(changes), not O(directory).

The **focus** is every object whose plan may differ from the last cycle's:
- users changed or removed in the users delta round, users added to or removed from a cached
  group (groups delta), users assigned or unassigned directly;
- every member of a group that is newly assigned, unassigned, removed, drifted in ServiceNow or
  had a plan item last cycle (their scope, links or rows may change with it);
- users and groups linked (or stamped) to a record someone else changed in ServiceNow, and the
  users of membership rows someone else added;
- every object that had a plan item last cycle (a write, a failure, a skip, a held disable, a
  back-off): it is planned again, so that what keeps an item keeps it, and what was written is
  checked once more;
- the direct reports of every focus user (their manager field follows the manager's link).

An object outside the focus had no plan item last cycle and none of its inputs changed, so a
full cycle plans nothing for it either. Planning a focus object needs, besides its own rows: its
manager (link and name), the records it is linked to, stamped for it or may match (by matching
value, through the index), the objects linked to those records (so a claimed record is not
adopted twice), the groups of its memberships, and the membership rows and links of its pairs.
Those come as context: planned too, but their items are dropped (`Focus`, engine/plan.py).

Where a narrow view cannot be exact, the cycle reads the whole cached picture instead
(`narrow_block`): SelectUniqueValue (uniqueness against every user name), Redact() (digests),
a sys_user reference other than the manager, nested groups with a membership change, a changed
app role or reference table, or a last cycle that did not see ServiceNow whole."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from snsync.config import Config
from snsync.engine.directory import assigned_groups, build_snapshot, refuse_over_long
from snsync.engine.plan import Focus, make_group_mapper, make_mapper
from snsync.engine.ports import Ports
from snsync.graph.client import DeltaRound
from snsync.graph.delta import USER_TYPE, apply_group_changes, apply_user_changes
from snsync.graph.opening import Opening
from snsync.mapping.mapper import Mapper
from snsync.model import (
    GROUP_TABLE,
    MEMBER_TABLE,
    USER_TABLE,
    ObjectType,
    Picture,
    Progress,
    Record,
    SourceCache,
    SourceObject,
    TargetSnapshot,
)
from snsync.servicenow.batchread import Changed
from snsync.state import PictureRows

log = logging.getLogger(__name__)
USER, GROUP = ObjectType.USER, ObjectType.GROUP
MEMBERSHIP, KEPT = ObjectType.MEMBERSHIP, ObjectType.KEPT_MEMBERSHIP


@dataclass(frozen=True)
class Narrowing:
    """What a narrowed read planned and loaded."""

    focus: Focus
    links: Mapping[ObjectType, Mapping[str, str]]  # the stored links it loaded
    dropped_groups: frozenset[str]  # cached groups no longer assigned (or deleted)
    unread_groups: frozenset[str] = frozenset()  # still assigned, but under an excluded role
    # The last cycle's ServiceNow watermark: the records loaded are only some of them, so the
    # next one starts from the newer of it and theirs, never from an older time.
    watermark: str = ""


@dataclass(frozen=True)
class Drift:
    """What others changed in ServiceNow since the watermark."""

    users: Sequence[Record]
    groups: Sequence[Record]
    rows: Sequence[Record]
    references: Mapping[str, Sequence[Record]]


@dataclass(frozen=True)
class GroupDelta:
    """The groups delta round, as the narrowed read uses it."""

    changed: frozenset[str]  # groups with changed attributes (or members)
    removed: frozenset[str]
    members: Mapping[str, tuple[Mapping[str, Any], ...]]  # group -> members@delta entries

    @classmethod
    def of(cls, items: Iterable[Mapping[str, Any]]) -> GroupDelta:
        changed: set[str] = set()
        removed: set[str] = set()
        members: dict[str, tuple[Mapping[str, Any], ...]] = {}
        for change in items:
            group_id = str(change.get("id"))
            (removed if "@removed" in change else changed).add(group_id)
            if change.get("members@delta"):  # a large group comes over several pages
                members[group_id] = (*members.get(group_id, ()), *change["members@delta"])
        return cls(frozenset(changed), frozenset(removed), members)

    def users(self, groups: set[str]) -> set[str]:
        """Users added to or removed from these groups."""
        return {
            str(e.get("id")) for g, entries in self.members.items() if g in groups for e in entries
        }


def narrow_block(config: Config) -> str | None:
    """Why this config needs the whole cached picture in an incremental cycle (None: it does
    not)."""
    users, groups = make_mapper(config.mappings), make_group_mapper(config)
    if users.redacted_targets or groups.redacted_targets:
        return "a mapping uses Redact()"
    expressions = [m.expression or "" for m in config.mappings.users]
    if any("selectuniquevalue" in e.lower() for e in expressions):
        return "a user mapping uses SelectUniqueValue (unique among all user names)"
    for m in config.mappings.users:
        if m.reference == USER_TABLE and (m.kind != "direct" or m.source != "manager"):
            return f"mappings.users '{m.target}' references sys_user other than the manager"
    if any(m.reference == USER_TABLE for m in config.mappings.groups):
        return "a group mapping references sys_user"
    return None


def read_narrowed(
    config: Config,
    ports: Ports,
    progress: Progress | None,
    opening: Opening,
    drifted: Callable[[], Drift],
) -> tuple[Picture, SourceCache, Narrowing, Any] | None:
    """The narrowed picture, its cache rows and focus, and the app scope; None when this cycle
    needs the whole cached picture after all (it says why in the log). `drifted`: the drift
    read (read_drift), waited for when it is needed."""
    rows = ports.state.picture_rows()
    rounds = (opening.users, opening.groups)
    delta = GroupDelta.of(rounds[1].items)
    if config.scope.expand_nested_groups and delta.members:
        _whole("nested groups are expanded and a membership changed")
        return None
    meta = rows.meta()
    cached_groups = rows.group_ids()  # assigned groups read last cycle
    known = set(meta.get("listed", [])) | cached_groups  # groups whose members are cached
    app = ports.directory.app_scope(progress, known_members=_Known(known), opening=opening)
    if dict(app.roles) != meta.get("roles"):
        _whole("the app's roles changed")
        return None
    references = rows.references()
    drift = drifted()
    if _with_references(references, drift) != references:
        _whole("a reference table (department, ...) changed in ServiceNow")
        return None
    wanted = assigned_groups(app, config.scope)
    gone = (known - set(app.group_members)) | delta.removed  # their members go too
    unread = cached_groups - set(wanted) - gone
    inputs = _Inputs(app, wanted, drift, delta, rounds, gone, cached_groups, known, unread)
    fu, fg = _touched(config, ports, rows, inputs, meta)
    return _assemble(config, ports, rows, inputs, fu, fg)


def _touched(
    config: Config, ports: Ports, rows: PictureRows, inputs: _Inputs, meta: Mapping[str, Any]
) -> tuple[set[str], set[str]]:
    """The focus users and groups: what this cycle's changes touch, and what had an item."""
    app, wanted, drift, delta = inputs.app, inputs.wanted, inputs.drift, inputs.delta
    known, cached_groups, gone = inputs.known, inputs.cached_groups, inputs.gone
    before = {tuple(a) for a in meta.get("assignments", [])}
    now = {(a.principal_type, a.principal_id, a.app_role_id) for a in app.assignments}
    reassigned = {(t, p) for t, p, _ in before ^ now}
    listed = set(app.group_members) - known  # listed whole this cycle
    pending = rows.pending()
    drifted_users = _owners(ports, USER, [r["sys_id"] for r in drift.users], drift.users, config)
    drifted_groups = _owners(
        ports, GROUP, [r["sys_id"] for r in drift.groups], drift.groups, config
    )
    structural = (
        {p for t, p in reassigned if t == "Group"}
        | listed
        | (set(wanted) - cached_groups)
        | gone
        | (cached_groups - set(wanted))
        | pending.get(GROUP, set())
        | drifted_groups
    )
    fu = (
        {str(u.get("id")) for u in inputs.rounds[0].items}
        | delta.users(known)  # a group not cached is listed whole when it is assigned
        | {p for t, p in reassigned if t == "User"}
        | pending.get(USER, set())
        | pending.get(MEMBERSHIP, set())
        | drifted_users
        | set(ports.state.links_to(USER, {r.get("user", "") for r in drift.rows}))
        | rows.members_of(structural & known)
        | {u for g in listed for u in app.group_members.get(g, ())}
    )
    fu |= rows.reports(fu)
    fg = (structural | (delta.changed & (cached_groups | set(wanted)))) - {""}
    return fu, fg


@dataclass(frozen=True)
class _Inputs:
    app: Any  # AppScope
    wanted: Mapping[str, str]  # assigned group -> role
    drift: Drift
    delta: GroupDelta
    rounds: tuple[DeltaRound, DeltaRound]
    gone: set[str]  # groups no longer assigned at all, or deleted: rows and members go
    cached_groups: set[str]
    known: set[str]  # groups whose members are cached
    unread: set[str]  # cached groups still assigned but no longer counted (an excluded role)


def _assemble(
    config: Config, ports: Ports, rows: PictureRows, inputs: _Inputs, fu: set[str], fg: set[str]
) -> tuple[Picture, SourceCache, Narrowing, Any]:
    """Load the focus users and groups with their context and build the narrowed picture."""
    state, app = ports.state, inputs.app
    raw = apply_user_changes(rows.users(fu), inputs.rounds[0].items)
    members = _members(rows, fu, inputs)
    managers = {m for u in raw.values() if (m := _manager_id(u)) and m not in fu}
    context = rows.users(managers)
    limit = config.limits.max_attribute_length
    user_list, refused = refuse_over_long([*raw.values(), *context.values()], limit)
    needed = fg | set(members)
    cached = apply_group_changes(
        rows.groups(needed & inputs.cached_groups), {}, inputs.rounds[1].items
    )[0]
    incomplete: list[str] = []
    from snsync.engine.reading import source_attributes  # reading imports this module

    group_list = ports.directory.groups(
        [g for g in inputs.wanted if g in needed],
        source_attributes(config, "group"),
        incomplete,
        known=cached,
    )
    group_list, refused_groups = refuse_over_long(group_list, limit)
    refused.update(refused_groups)
    narrowed_app = replace(
        app, group_members={g: tuple(members.get(g, ())) for g in app.group_members}
    )
    source = build_snapshot(
        user_list,
        narrowed_app,
        config.scope,
        group_list,
        incomplete,
        refused=refused,
        present=set(raw) | set(context),
    )
    target, links = _target(config, ports, rows, source, fu | managers, fu, needed, inputs)
    offsets = {kind: state.link_count(kind) - len(links[kind]) for kind in (USER, GROUP)}
    in_scope = rows.in_scope_count() - len(rows.in_scope(fu))
    focus = Focus(frozenset(fu), frozenset(fg), offsets, in_scope)
    kept = {str(u["id"]): u for u in user_list if str(u.get("id")) in fu}
    cache = SourceCache(kept, {str(g["id"]): dict(g) for g in group_list}, dict(members))
    narrowing = Narrowing(
        focus,
        links,
        frozenset(inputs.gone),
        frozenset(inputs.unread),
        state.servicenow_watermark() or "",
    )
    return Picture(source, target), cache, narrowing, app


def _members(rows: PictureRows, fu: set[str], inputs: _Inputs) -> dict[str, tuple[str, ...]]:
    """Group -> the focus users that are its members now (cache, then the delta round)."""
    members: dict[str, dict[str, None]] = {}
    for group_id, user_id in rows.groups_of(fu):
        members.setdefault(group_id, {})[user_id] = None
    for group_id, entries in inputs.delta.members.items():
        if group_id not in inputs.known:
            continue  # not cached: listed whole when it is assigned
        current = members.setdefault(group_id, {})
        for entry in entries:
            member_id = str(entry.get("id"))
            if "@removed" in entry:
                current.pop(member_id, None)
            elif entry.get("@odata.type", USER_TYPE) == USER_TYPE and member_id in fu:
                current[member_id] = None
    for group_id in set(inputs.app.group_members) - inputs.known:
        listed = [u for u in inputs.app.group_members[group_id] if u in fu]
        members[group_id] = dict.fromkeys(listed)
    for group_id in inputs.gone:
        members.pop(group_id, None)
    return {g: tuple(m) for g, m in members.items() if g in inputs.app.group_members}


def _target(
    config: Config,
    ports: Ports,
    rows: PictureRows,
    source: Any,
    user_ids: set[str],
    fu: set[str],
    group_ids: set[str],
    inputs: _Inputs,
) -> tuple[TargetSnapshot, dict[ObjectType, Mapping[str, str]]]:
    """The ServiceNow records, rows and links the narrowed plan needs."""
    state, drift = ports.state, inputs.drift
    user_mapper, group_mapper = make_mapper(config.mappings), make_group_mapper(config)
    users = [o for i, o in source.users.items() if i in fu]
    user_links, records = _records(
        config, ports, rows, USER, user_ids, _matching(user_mapper, users), drift.users
    )
    groups = [o for i, o in source.groups.items() if i in group_ids]
    group_links, group_records = _records(
        config, ports, rows, GROUP, group_ids, _matching(group_mapper, groups), drift.groups
    )
    member_groups = rows.member_groups()
    member_rows = rows.rows_of("user_sys", records)
    from snsync.engine.reading import MEMBER_FIELDS, subset

    for row in drift.rows:
        if row.get("group") in member_groups:
            member_rows[row["sys_id"]] = subset(row, MEMBER_FIELDS)
    links: dict[ObjectType, Mapping[str, str]] = {
        USER: user_links,
        GROUP: group_links,
        MEMBERSHIP: state.pair_links_of(MEMBERSHIP, fu),
        KEPT: state.pair_links_of(KEPT, fu),
    }
    target = TargetSnapshot(records, rows.references(), group_records, member_rows, member_groups)
    return target, links


def _records(
    config: Config,
    ports: Ports,
    rows: PictureRows,
    object_type: ObjectType,
    ids: set[str],
    matching: Mapping[str, set[str]],
    drifted: Sequence[Record],
) -> tuple[dict[str, str], dict[str, Record]]:
    """Stored links of the objects and their records: linked, stamped for them, matching them,
    drifted; then the links of every object those records are linked or stamped to."""
    state, kind = ports.state, object_type.value
    prefix = config.mappings.link_prefix if config.mappings.link_field else None
    links = state.links_for(object_type, ids)
    records = rows.records(kind, links.values())
    if prefix is not None:
        records.update(rows.stamped(kind, [prefix + i for i in ids]))
    for name, values in matching.items():
        records.update(rows.matching(kind, name, values))
    records.update({r["sys_id"]: r for r in drifted})
    claims = state.links_to(object_type, records)
    stamped = _owners(ports, object_type, [], list(records.values()), config)
    claims.update(state.links_for(object_type, stamped - set(claims)))
    links.update(claims)
    missing = [s for s in links.values() if s not in records]
    records.update(rows.records(kind, missing))
    return links, records


def _matching(mapper: Mapper, objects: Iterable[SourceObject]) -> dict[str, set[str]]:
    """Matching field -> the values the objects would match records by."""
    result: dict[str, set[str]] = {}
    for found in objects:
        for name, value in mapper.desired(found).matching:
            result.setdefault(name, set()).add(value)
    return result


def read_drift(config: Config, ports: Ports, since: str, tables: Iterable[str]) -> Drift:
    """The ServiceNow records others changed since the watermark, in the tables the whole path
    reads (the reference tables the picture holds): the first page of each read in one Batch
    API request (servicenow/batchread.py), an empty one when nothing changed."""
    from snsync.engine.reading import MEMBER_FIELDS, target_fields

    me = ports.account
    user_fields = target_fields(make_mapper(config.mappings), "user_name")
    group_fields = target_fields(make_group_mapper(config), "name")
    names = sorted(tables)
    reads = [
        Changed(USER_TABLE, tuple(user_fields), me),
        Changed(GROUP_TABLE, tuple(group_fields), me),
        Changed(MEMBER_TABLE, MEMBER_FIELDS, me, added=True),
        *(Changed(table, ("name",), None) for table in names),
    ]
    users, groups, rows, *references = ports.target.changes_since(reads, since)
    return Drift(users, groups, rows, dict(zip(names, references, strict=True)))


def _with_references(
    references: Mapping[str, Mapping[str, str]], drift: Drift
) -> dict[str, dict[str, str]]:
    result = {table: dict(names) for table, names in references.items()}
    for table, changed in drift.references.items():
        for row in changed:
            if row.get("name"):
                result.setdefault(table, {})[row["name"].strip().lower()] = row["sys_id"]
    return result


def _owners(
    ports: Ports,
    object_type: ObjectType,
    sys_ids: Sequence[str],
    records: Sequence[Record],
    config: Config,
) -> set[str]:
    """Directory ids linked to the records, or named by their stamps."""
    owners = set(ports.state.links_to(object_type, sys_ids)) if sys_ids else set()
    prefix = config.mappings.link_prefix if config.mappings.link_field else None
    for record in records:
        stamp = record.get(config.mappings.link_field or "", "")
        if prefix is not None and stamp.startswith(prefix):
            owners.add(stamp[len(prefix) :])
    return owners


def _manager_id(user: Mapping[str, Any]) -> str | None:
    manager = user.get("manager")
    return str(manager.get("id")) if isinstance(manager, Mapping) and manager.get("id") else None


def _whole(why: str) -> None:
    log.info("this incremental cycle reads the whole cached picture: %s", why)


class _Known(Mapping[str, tuple[str, ...]]):
    """Cached groups, for the app scope read: their members are not listed again (the narrowed
    read takes them from the cache rows it needs)."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    def __getitem__(self, key: str) -> tuple[str, ...]:
        if key not in self.ids:
            raise KeyError(key)
        return ()

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)
