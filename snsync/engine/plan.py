"""One cycle's plan, as a pure function of what was read: `plan_cycle(picture, links, escrow,
options)`. It maps and plans users and groups, guards them, plans the missing reference records,
the memberships and the execution waves, and refers to every record created during the cycle by
a placeholder the executor replaces with the new sys_id. Nothing is planned again after
execution: `snsync plan` prints exactly the writes `snsync run` makes on the same picture."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from snsync.config import Config, MappingsConfig, SafetyConfig
from snsync.engine.approvals import trust_from_config
from snsync.engine.guards import (
    DisableLimit,
    TableRead,
    Waiting,
    hold_disables,
    hold_for_incomplete_source,
    hold_for_incomplete_target,
    hold_memberships_for_incomplete_target,
    incomplete_target,
    wait_for_backoff,
)
from snsync.engine.memberships import MembershipPlan, Waits, plan_memberships
from snsync.engine.planner import (
    PlanOptions,
    effective_links,
    plan_objects,
    protected_links,
    with_trust,
)
from snsync.engine.trust import Trust
from snsync.engine.waves import user_waves
from snsync.mapping.expressions import EvalContext
from snsync.mapping.mapper import Mapper
from snsync.masking import Masker
from snsync.model import (
    GROUP_TABLE,
    MEMBER_TABLE,
    USER_TABLE,
    Action,
    Change,
    Desired,
    EscrowEntry,
    Held,
    ObjectType,
    Picture,
    Plan,
    PlanItem,
    Record,
    SourceObject,
    SourceSnapshot,
    TargetSnapshot,
    placeholder_of,
)

USER, GROUP, MEMBERSHIP = ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP
KEPT = ObjectType.KEPT_MEMBERSHIP
Links = Mapping[ObjectType, Mapping[str, str]]  # object type -> directory id -> sys_id
References = Mapping[str, Mapping[str, str]]  # table -> display value (lower) -> sys_id
References_ = Mapping[str, tuple[str, str]]  # a desired record's field -> (table, value)


@dataclass(frozen=True)
class CycleOptions:
    """What planning takes from the config, the trust facts, and the moment it plans at."""

    mappings: MappingsConfig
    safety: SafetyConfig
    create_missing: bool = False
    allow_disables: bool = False
    now: float = 0.0
    # Without the roles read from ServiceNow every adoption of an existing record is held.
    trust: Trust = field(default_factory=lambda: Trust(user_roles=None, group_roles=None))
    masker: Masker | None = None  # compares Redact() values with the digests the state keeps


def cycle_options(
    config: Config,
    *,
    now: float,
    allow_disables: bool = False,
    trust: Trust | None = None,
    masker: Masker | None = None,
) -> CycleOptions:
    """Planning options from the config (and this cycle's trust facts)."""
    return CycleOptions(
        config.mappings,
        config.safety,
        config.references.create_missing,
        allow_disables,
        now,
        trust or trust_from_config(config),
        masker,
    )


@dataclass(frozen=True)
class Focus:
    """A narrowed cycle (engine/narrow.py): the picture holds only the objects a change touches
    and what planning them needs (their managers, the records they may match, the objects linked
    to those records). Only the focus objects' items are kept (the others were planned from a
    partial view of their inputs); the guards count the rest of each table from the state."""

    users: frozenset[str]
    groups: frozenset[str]
    link_offsets: Mapping[ObjectType, int] = field(default_factory=dict)  # links not loaded
    in_scope_offset: int = 0  # users in scope outside the focus


@dataclass(frozen=True)
class TablePlan:
    """The plan for one table, with the desired records and links it was computed from."""

    plan: Plan
    # The desired records it was planned from; the CyclePlan `plan_cycle` returns keeps only
    # their names (CyclePlan.names): at 100,000 users they are about 100 MB.
    desired: tuple[Desired, ...]
    links: dict[str, str]
    stale_links: tuple[str, ...]
    frozen: frozenset[str] = frozenset()  # linked to a protected record: no membership writes


@dataclass(frozen=True)
class CyclePlan:
    """Everything one cycle writes, in execution order (`waves`), and what it was planned from."""

    users: TablePlan
    groups: TablePlan
    memberships: MembershipPlan
    references: tuple[PlanItem, ...]  # missing reference records to create first
    waves: tuple[tuple[PlanItem, ...], ...]  # each wave runs after the one before
    picture: Picture
    in_scope: int
    held: tuple[Held, ...] = ()
    target_incomplete: tuple[str, ...] = ()  # why ServiceNow's answer cannot be trusted whole
    display_names: Mapping[str, str] = field(default_factory=dict)  # when `desired` is dropped
    focus: Focus | None = None  # a narrowed cycle: only these objects were planned

    @property
    def snapshot(self) -> SourceSnapshot:
        return self.picture.source

    @property
    def target(self) -> TargetSnapshot:
        return self.picture.target

    @property
    def names(self) -> dict[str, str]:
        """Directory id -> display name, for users and groups."""
        if self.display_names:
            return dict(self.display_names)
        return {d.directory_id: d.display_name for d in (*self.users.desired, *self.groups.desired)}

    @property
    def unchanged(self) -> int:
        return self.users.plan.unchanged + self.groups.plan.unchanged

    def items(self) -> tuple[PlanItem, ...]:
        """Every item, in the order the executor runs them."""
        return tuple(item for wave in self.waves for item in wave)


def plan_cycle(
    picture: Picture,
    links: Links,
    escrow: Sequence[EscrowEntry],
    options: CycleOptions,
    focus: Focus | None = None,
) -> CyclePlan:
    """Plan and guard one cycle (pure): over a complete picture, or over a narrowed one
    (`focus`), keeping the items of the focus objects only."""
    source, target = picture.source, picture.target
    users, groups, creates = plan_tables(picture, links, options)
    offsets = focus.link_offsets if focus else {}
    if focus is None:
        unseen = incomplete_target(
            table_reads(target, source, groups, links), options.safety.target_min_share
        )
    else:
        # A narrowed cycle runs only on a picture the last cycle saw whole (engine/narrow.py).
        users = _focused(users, focus.users, offsets.get(USER, 0))
        groups, unseen = _focused(groups, focus.groups, offsets.get(GROUP, 0)), ()
    waiting = waiting_for(escrow)
    held: list[Held] = []
    guard = Guard(source.incomplete, unseen, waiting, options, held)
    limits = options.safety.max_disables
    users = guard.table(users, links.get(USER, {}), limits.users, offsets.get(USER, 0))
    groups = guard.table(groups, links.get(GROUP, {}), limits.groups, offsets.get(GROUP, 0))
    names = {d.directory_id: d.display_name for d in (*users.desired, *groups.desired)}
    minted = frozenset(placeholder_of(item) for item in creates)
    by_user, by_group = _references_of(users, minted), _references_of(groups, minted)
    # The desired records go before the memberships and waves are built (at 100,000 users
    # they are tens of MB that these can reuse).
    users, groups = replace(users, desired=()), replace(groups, desired=())
    after = links_after(users), links_after(groups)
    planned = plan_cycle_memberships(
        source, target, users, groups, links, names, options.trust.account, after
    )
    if focus is not None:
        planned = _focused_memberships(planned, focus.users)
    memberships = guard.memberships(planned, links.get(MEMBERSHIP, {}))
    user_items = [
        tuple(_mark_references(i, by_user, minted) for i in wave)
        for wave in user_waves(users.plan.items, after[0][1])
    ]
    group_items = tuple(_mark_references(i, by_group, minted) for i in groups.plan.items)
    users = _with_items(users, tuple(i for wave in user_items for i in wave))
    groups = _with_items(groups, group_items)
    waves = (creates, *user_items, group_items, memberships.plan.items)
    counted = source.users.values() if focus is None else _in(source.users, focus.users)
    in_scope = sum(1 for u in counted if u.in_scope) + (focus.in_scope_offset if focus else 0)
    return CyclePlan(
        users,
        groups,
        memberships,
        creates,
        tuple(w for w in waves if w),
        picture,
        in_scope,
        tuple(held),
        unseen,
        names,
        focus,
    )


def _in(objects: Mapping[str, SourceObject], ids: frozenset[str]) -> list[SourceObject]:
    return [o for i, o in objects.items() if i in ids]


def _focused(table: TablePlan, ids: frozenset[str], unloaded: int) -> TablePlan:
    """The table's items for the focus objects only. Unchanged: the focus objects without an
    item, and every linked object outside the focus (it has none)."""
    items = tuple(i for i in table.plan.items if i.directory_id in ids)
    unchanged = sum(1 for d in table.desired if d.directory_id in ids) - len(items)
    unchanged += unloaded + sum(1 for d in table.links if d not in ids)
    plan = replace(table.plan, items=items, unchanged=max(unchanged, 0))
    return replace(table, plan=plan)


def _focused_memberships(planned: MembershipPlan, users: frozenset[str]) -> MembershipPlan:
    """The membership plan for the pairs of the focus users only."""

    def mine(key: str) -> bool:
        return key.split(":", 1)[-1] in users

    items = tuple(i for i in planned.plan.items if mine(i.directory_id))
    return replace(
        planned,
        plan=replace(planned.plan, items=items),
        adopted={k: v for k, v in planned.adopted.items() if mine(k)},
        forgotten=tuple(k for k in planned.forgotten if mine(k)),
        recovered={k: v for k, v in planned.recovered.items() if mine(k)},
    )


def plan_tables(
    picture: Picture, links: Links, options: CycleOptions
) -> tuple[TablePlan, TablePlan, tuple[PlanItem, ...]]:
    """Users and groups planned against the target, and the reference records to create first
    (their placeholders stand in the reference tables, so the records naming them get them)."""
    source, target = picture.source, picture.target
    user_mapper, group_mapper = make_mapper(options.mappings, target), make_group_mapper(options)
    user_options = with_trust(plan_options(options, user_mapper), options.trust)
    group_options = with_trust(plan_options(options, group_mapper, GROUP), options.trust)
    stored_users, stored_groups = links.get(USER, {}), links.get(GROUP, {})
    wanted_users = desired(user_mapper, source.users, target.users, stored_users, user_options)
    wanted_groups = desired(
        group_mapper, source.groups, target.groups, stored_groups, group_options
    )
    missing = missing_references([*wanted_users, *wanted_groups], target.references)
    creates = reference_creates(missing if options.create_missing else ())
    references = _with_new_references(target.references, creates)
    users = plan_table(wanted_users, target.users, references, stored_users, user_options)
    group_options = replace(group_options, people=users.links)
    groups = plan_table(wanted_groups, target.groups, references, stored_groups, group_options)
    return users, groups, creates


def make_mapper(mappings: MappingsConfig, target: TargetSnapshot | None = None) -> Mapper:
    """The user mapper, with SelectUniqueValue checking against ServiceNow's user names."""
    taken = {r.get("user_name", "").lower() for r in (target.users.values() if target else ())}
    context = EvalContext(is_unique=lambda value: value.lower() not in taken)
    return Mapper(
        mappings.users,
        section="mappings.users",
        link_field=mappings.link_field,
        link_prefix=mappings.link_prefix,
        context=context,
    )


def make_group_mapper(options: CycleOptions | Config) -> Mapper:
    mappings = options.mappings
    return Mapper(
        mappings.groups,
        section="mappings.groups",
        link_field=mappings.link_field,
        link_prefix=mappings.link_prefix,
    )


def plan_options(
    options: CycleOptions | Config, mapper: Mapper, object_type: ObjectType = USER
) -> PlanOptions:
    """Planner options, for users or groups."""
    actions = options.safety.actions
    result = PlanOptions(
        matching_fields=mapper.matching_fields,
        link_field=mapper.link_field,
        link_prefix=options.mappings.link_prefix,
        create=actions.create,
        update=actions.update,
        disable=actions.disable,
        skip_out_of_scope_deletions=options.safety.skip_out_of_scope_deletions,
        object_type=object_type,
        redacted=mapper.redacted_targets,
        masker=options.masker if isinstance(options, CycleOptions) else None,
    )
    if object_type is GROUP:
        return replace(result, protected_names=frozenset(), name_field="name")
    return result


def desired(
    mapper: Mapper,
    objects: Mapping[str, SourceObject],
    records: Mapping[str, Record],
    stored: Mapping[str, str],
    options: PlanOptions,
) -> tuple[Desired, ...]:
    """Desired records of the objects that matter: in scope, or linked (to be disabled)."""
    links = effective_links(stored, records, options)
    return tuple(mapper.desired(o) for o in objects.values() if o.in_scope or o.id in links)


def plan_table(
    wanted: Sequence[Desired],
    records: Mapping[str, Record],
    references: References,
    stored: Mapping[str, str],
    options: PlanOptions,
) -> TablePlan:
    """Plan one table (pure)."""
    links = effective_links(stored, records, options)
    plan = plan_objects(wanted, records, references, links, options)
    stale = tuple(sorted(set(stored) - set(links)))
    return TablePlan(plan, tuple(wanted), links, stale, protected_links(links, records, options))


def missing_references(wanted: Iterable[Desired], references: References) -> list[tuple[str, str]]:
    """(table, display value) of reference values in-scope records name that do not exist,
    one per value whatever its case, first spelling in sorted order."""
    seen: dict[tuple[str, str], str] = {}
    for want in wanted:
        if not want.in_scope:
            continue
        for table, value in want.references.values():
            key = value.strip().lower()
            if table != USER_TABLE and key and key not in references.get(table, {}):
                seen[(table, key)] = min(value, seen.get((table, key), value))
    return sorted((table, value) for (table, _), value in seen.items())


def reference_creates(missing: Iterable[tuple[str, str]]) -> tuple[PlanItem, ...]:
    """Create items for missing reference records (references.create_missing)."""
    return tuple(
        PlanItem(
            Action.CREATE,
            f"{table}:{value}",
            value,
            None,
            (Change("name", None, value),),
            message="created because references.create_missing is on",
            object_type=ObjectType.REFERENCE,
            reference_table=table,
        )
        for table, value in missing
    )


@dataclass(frozen=True)
class Guard:
    """The guards of one cycle: incomplete source or target, back-off, disable threshold."""

    incomplete: Sequence[str]  # why the directory was not read completely
    unseen: Sequence[str]  # why ServiceNow's answer cannot be trusted whole
    waiting: Sequence[Waiting]
    options: CycleOptions
    held: list[Held]

    def table(
        self, table: TablePlan, stored: Mapping[str, str], limit: DisableLimit, unloaded: int = 0
    ) -> TablePlan:
        """`unloaded`: links of the table outside a narrowed picture (they count for limits)."""
        items = hold_for_incomplete_source(table.plan.items, self.incomplete)
        items = hold_for_incomplete_target(items, self.unseen, stored)
        items = wait_for_backoff(items, self.waiting, self.options.now)
        linked = len(table.links) + unloaded
        items, hold = hold_disables(items, limit, linked, self.options.allow_disables)
        if hold:
            self.held.append(hold)
        # A link is not stale when its table was not seen whole.
        stale = () if self.unseen else table.stale_links
        return replace(_with_items(table, items), stale_links=stale)

    def memberships(self, planned: MembershipPlan, owned: Mapping[str, str]) -> MembershipPlan:
        """No removal on an incomplete source or target; back-off."""
        planned = hold_memberships_for_incomplete_target(planned, self.unseen, owned)
        items = hold_for_incomplete_source(planned.plan.items, self.incomplete)
        items = wait_for_backoff(items, self.waiting, self.options.now)
        return replace(planned, plan=replace(planned.plan, items=items))


def table_reads(
    target: TargetSnapshot, source: SourceSnapshot, groups: TablePlan, links: Links
) -> list[TableRead]:
    """How much of each managed table came back, against the links snsync holds for it."""
    user_links, group_links = links.get(USER, {}), links.get(GROUP, {})
    rows = target.memberships
    read_groups = {r.get("group", "") for r in rows.values()} | set(existing_groups(source, groups))
    group_ids = {d for d, s in group_links.items() if s in read_groups}
    owned = {k: s for k, s in links.get(MEMBERSHIP, {}).items() if k.split(":", 1)[0] in group_ids}
    return [
        TableRead(
            USER_TABLE,
            len(target.users),
            len(user_links),
            sum(1 for s in user_links.values() if s in target.users),
            never_empty=True,
        ),
        TableRead(
            GROUP_TABLE,
            len(target.groups),
            len(group_links),
            sum(1 for s in group_links.values() if s in target.groups),
        ),
        TableRead(MEMBER_TABLE, len(rows), len(owned), sum(1 for s in owned.values() if s in rows)),
    ]


def existing_groups(source: SourceSnapshot, groups: TablePlan) -> list[str]:
    """sys_ids of the existing in-scope groups: linked, or about to be adopted."""
    existing = dict(groups.links)
    existing.update({i.directory_id: i.sys_id for i in groups.plan.items if i.adopt and i.sys_id})
    return [existing[g] for g in source.groups if g in existing]


def plan_cycle_memberships(
    source: SourceSnapshot,
    target: TargetSnapshot,
    users: TablePlan,
    groups: TablePlan,
    links: Links,
    names: Mapping[str, str],
    account: str,
    after: tuple[LinksAfter, LinksAfter] | None = None,
) -> MembershipPlan:
    """Memberships of the in-scope groups, with the links the users and groups will have once
    their writes are done (`after`: links_after of users and groups, when already made). A new
    row waits for its group and user: created, or adopted, first."""
    user_links, user_waits = after[0] if after else links_after(users)
    group_links, group_waits = after[1] if after else links_after(groups)
    planned = plan_memberships(
        wanted_members(source),
        group_links,
        user_links,
        list(target.memberships.values()),
        links.get(MEMBERSHIP, {}),
        names,
        kept=links.get(KEPT, {}),
        account=account,
        frozen=users.frozen | groups.frozen,
        waits=Waits(group_waits, user_waits),
    )
    return planned


LinksAfter = tuple[dict[str, str], dict[str, str]]  # links after the writes, placeholders


def links_after(table: TablePlan) -> LinksAfter:
    """Links as they will be after the table's writes (a new record under its placeholder), and
    the placeholders of the records created or adopted this cycle, by directory id."""
    links = dict(table.links)
    waits: dict[str, str] = {}
    for item in table.plan.items:
        if not item.writes or not (item.action is Action.CREATE or item.adopt):
            continue
        waits[item.directory_id] = placeholder_of(item)
        # An adopted record keeps its sys_id here, so that its existing rows are recognized.
        adopted = item.sys_id if item.adopt else None
        links[item.directory_id] = adopted or waits[item.directory_id]
    return links, waits


def managed_group_ids(
    source: SourceSnapshot, target: TargetSnapshot, links: Links, options: CycleOptions
) -> list[str]:
    """sys_ids of the existing groups a cycle may manage (linked, or matched for adoption even
    if the adoption then waits for roles or approval): whose membership rows the read phase
    brings, so that planning needs no further read."""
    mapper = make_group_mapper(options)
    trusting = replace(options.trust, user_roles={}, group_roles={})
    group_options = with_trust(plan_options(options, mapper, GROUP), trusting)
    stored = links.get(GROUP, {})
    wanted = desired(mapper, source.groups, target.groups, stored, group_options)
    table = plan_table(wanted, target.groups, target.references, stored, group_options)
    return existing_groups(source, table)


def wanted_members(snapshot: SourceSnapshot) -> dict[str, tuple[str, ...]]:
    """Members wanted per in-scope group: its directory members that are in scope."""
    return {
        gid: tuple(u for u in members if u in snapshot.users and snapshot.users[u].in_scope)
        for gid, members in snapshot.members.items()
        if gid in snapshot.groups
    }


def waiting_for(escrow: Iterable[EscrowEntry]) -> list[Waiting]:
    """Objects whose writes wait out a back-off, from the escrow in the state."""
    return [Waiting(e.object_type, e.directory_id, e.failures, e.next_attempt) for e in escrow]


def _with_new_references(references: References, creates: Sequence[PlanItem]) -> References:
    """Reference tables with the records this cycle creates, under their placeholders."""
    if not creates:
        return references
    result = {table: dict(names) for table, names in references.items()}
    for item in creates:
        result.setdefault(item.reference_table, {})[item.display_name.strip().lower()] = (
            placeholder_of(item)
        )
    return result


def _references_of(table: TablePlan, minted: frozenset[str]) -> dict[str, References_]:
    """Directory id -> its desired record's reference fields, when reference records are
    created this cycle (nothing else needs them past planning)."""
    return {d.directory_id: d.references for d in table.desired} if minted else {}


def _mark_references(
    item: PlanItem, wanted: Mapping[str, References_], minted: frozenset[str]
) -> PlanItem:
    """Mark the reference fields that point at a record created this cycle."""
    if not minted:
        return item
    fields = {c.field for c in item.changes if c.new in minted}
    if not fields or item.directory_id not in wanted:
        return item
    references = wanted[item.directory_id]
    pending = {f for f in fields if f in references and references[f][0] != USER_TABLE}
    return replace(item, pending=item.pending | pending) if pending else item


def _with_items(table: TablePlan, items: Sequence[PlanItem]) -> TablePlan:
    return replace(table, plan=replace(table.plan, items=tuple(items)))
