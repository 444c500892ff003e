"""One sync cycle: read both sides, map, plan users, groups and memberships, execute them in that
order, then record links and the provisioning log. Each step is another module's job; this one
only puts them in order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from snsync.config import Config
from snsync.connections import Connections
from snsync.engine.approvals import read_trust, trust_from_config
from snsync.engine.executor import OnResult, execute
from snsync.engine.guards import (
    DisableLimit,
    Held,
    TableRead,
    Waiting,
    hold_disables,
    hold_for_incomplete_source,
    hold_for_incomplete_target,
    hold_memberships_for_incomplete_target,
    incomplete_target,
    wait_for_backoff,
)
from snsync.engine.journal import journaling
from snsync.engine.memberships import MEMBERSHIP_TABLE, MembershipPlan, plan_memberships
from snsync.engine.model import (
    Action,
    Change,
    Desired,
    Plan,
    PlanItem,
    Reason,
    Record,
    Result,
    SourceObject,
    SourceSnapshot,
    Status,
    TargetSnapshot,
)
from snsync.engine.planner import (
    PlanOptions,
    effective_links,
    execution_waves,
    plan_deferred,
    plan_objects,
    protected_links,
    with_references,
    with_trust,
)
from snsync.engine.snapshot import (
    DeltaExpired,
    Reading,
    choose_mode,
    read_full,
    read_incremental,
    reference_tables,
    require_full_next,
    save_reading,
)
from snsync.engine.trust import Trust, trust_fields
from snsync.errors import ExitCode
from snsync.mapping.expressions import EvalContext
from snsync.mapping.mapper import Mapper
from snsync.servicenow import target as target_io
from snsync.state import State

USER, GROUP, MEMBERSHIP = "user", "group", "membership"
KEPT = "membership_kept"  # links of membership rows that existed before snsync: never deleted
TABLES = {USER: target_io.USER_TABLE, GROUP: target_io.GROUP_TABLE, MEMBERSHIP: MEMBERSHIP_TABLE}
Progress = Callable[[str, int], None]
HELD_KEY = "held"  # state key: the disables the last cycle held back
log = logging.getLogger(__name__)
TO_APPLY = "to apply"  # progress key announcing the planned writes, so applying shows a bar


@dataclass(frozen=True)
class TablePlan:
    """The plan for one table, with the desired records and links it was computed from."""

    plan: Plan
    desired: tuple[Desired, ...]
    links: dict[str, str]
    stale_links: tuple[str, ...]
    frozen: frozenset[str] = frozenset()  # linked to a protected record: no membership writes


@dataclass(frozen=True)
class CyclePlan:
    """Everything planned for one cycle."""

    users: TablePlan
    groups: TablePlan
    memberships: MembershipPlan  # a preview: new objects appear under placeholder ids
    member_rows: tuple[Record, ...]
    snapshot: SourceSnapshot
    target: TargetSnapshot
    in_scope: int
    held: tuple[Held, ...] = ()
    reading: Reading | None = None
    trust: Trust | None = None
    target_incomplete: tuple[str, ...] = ()  # why ServiceNow's answer cannot be trusted whole

    @property
    def names(self) -> dict[str, str]:
        """Directory id -> display name, for users and groups."""
        return {d.directory_id: d.display_name for d in (*self.users.desired, *self.groups.desired)}

    @property
    def unchanged(self) -> int:
        return self.users.plan.unchanged + self.groups.plan.unchanged

    def items(self) -> tuple[PlanItem, ...]:
        return self.users.plan.items + self.groups.plan.items + self.memberships.plan.items


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did."""

    cycle_id: int | None
    dry_run: bool
    duration_s: float
    planned: CyclePlan
    results: tuple[Result, ...]
    requests: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Results by object type and action, then by status (keys like 'user Create')."""
        table: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = table.setdefault(f"{r.item.object_type} {r.item.action.value}", {})
            row[r.status.value] = row.get(r.status.value, 0) + 1
        return table

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status is Status.FAILURE]

    @property
    def exit_code(self) -> ExitCode:
        held_adoption = any(r.reason == Reason.ADOPTION_HELD for r in self.results)
        if self.planned.held or self.planned.target_incomplete or held_adoption:
            return ExitCode.HELD
        return ExitCode.OBJECT_FAILURES if self.failures() else ExitCode.OK


def plan_options(config: Config, mapper: Mapper, object_type: str = USER) -> PlanOptions:
    """Planner options from the config, for users or groups."""
    actions = config.safety.actions
    options = PlanOptions(
        matching_fields=mapper.matching_fields,
        link_field=mapper.link_field,
        link_prefix=config.mappings.link_prefix,
        create=actions.create,
        update=actions.update,
        disable=actions.disable,
        skip_out_of_scope_deletions=config.safety.skip_out_of_scope_deletions,
        object_type=object_type,
    )
    if object_type == GROUP:
        return replace(options, protected_names=frozenset(), name_field="name")
    return options


def target_fields(mapper: Mapper, name_field: str) -> list[str]:
    """The fields a cycle reads from a table (sys_updated_on: the incremental watermark)."""
    extra = [mapper.link_field] if mapper.link_field else []
    trust = trust_fields(name_field)
    return list(
        dict.fromkeys([*mapper.targets, *extra, name_field, "active", "sys_updated_on", *trust])
    )


def make_mapper(config: Config, target: TargetSnapshot | None = None) -> Mapper:
    """The user mapper, with SelectUniqueValue checking against ServiceNow's user names."""
    taken = {r.get("user_name", "").lower() for r in (target.users.values() if target else ())}
    context = EvalContext(is_unique=lambda value: value.lower() not in taken)
    return Mapper(
        config.mappings.users,
        section="mappings.users",
        link_field=config.mappings.link_field,
        link_prefix=config.mappings.link_prefix,
        context=context,
    )


def make_group_mapper(config: Config) -> Mapper:
    return Mapper(
        config.mappings.groups,
        section="mappings.groups",
        link_field=config.mappings.link_field,
        link_prefix=config.mappings.link_prefix,
    )


def plan_from(
    config: Config,
    snapshot: SourceSnapshot,
    target: TargetSnapshot,
    links: Mapping[str, Mapping[str, str]],
    trust: Trust | None = None,
) -> CyclePlan:
    """Map and plan users, then groups (pure). Memberships come with `with_memberships`.
    Without `trust` (roles read from ServiceNow) every adoption of an existing record is held."""
    trust = trust or trust_from_config(config)
    mapper = make_mapper(config, target)
    users = _plan_table(
        mapper,
        with_trust(plan_options(config, mapper), trust),
        snapshot.users,
        target.users,
        target,
        links.get(USER, {}),
    )
    group_mapper = make_group_mapper(config)
    group_options = replace(
        with_trust(plan_options(config, group_mapper, GROUP), trust), people=users.links
    )
    groups = _plan_table(
        group_mapper, group_options, snapshot.groups, target.groups, target, links.get(GROUP, {})
    )
    in_scope = sum(1 for u in snapshot.users.values() if u.in_scope)
    empty = MembershipPlan(Plan(()), {}, ())
    return CyclePlan(users, groups, empty, (), snapshot, target, in_scope, trust=trust)


def plan_trusted(
    config: Config,
    conns: Connections,
    state: State,
    snapshot: SourceSnapshot,
    target: TargetSnapshot,
    links: Mapping[str, Mapping[str, str]],
    whole_directory: bool = True,
) -> CyclePlan:
    """Plan; when an adoption waits on roles, read who holds which role and plan again (so a
    cycle that adopts nothing reads no role table)."""
    trust = replace(trust_from_config(config, state), whole_directory=whole_directory)
    planned = plan_from(config, snapshot, target, links, trust)
    if any(i.reason == Reason.ADOPTION_HELD for i in planned.items()):
        trust = replace(
            read_trust(config, conns.servicenow, state), whole_directory=whole_directory
        )
        planned = plan_from(config, snapshot, target, links, trust)
    return planned


def with_memberships(
    planned: CyclePlan,
    rows: Sequence[Record],
    owned: Mapping[str, str],
    kept: Mapping[str, str] | None = None,
) -> CyclePlan:
    """The plan with a memberships preview: new users and groups under placeholder ids."""
    preview = plan_memberships(
        _wanted(planned.snapshot),
        _with_placeholders(planned.groups),
        _with_placeholders(planned.users),
        rows,
        owned,
        planned.names,
        kept=kept,
        frozen=planned.users.frozen | planned.groups.frozen,
        account=planned.trust.account if planned.trust else "",
    )
    return replace(planned, memberships=preview, member_rows=tuple(rows))


def stored_links(state: State) -> dict[str, dict[str, str]]:
    """Every stored link, by object type."""
    return {kind: state.links(kind) for kind in (USER, GROUP, MEMBERSHIP, KEPT)}


def read_and_plan(
    config: Config,
    conns: Connections,
    state: State,
    progress: Progress | None = None,
    allow_disables: bool = False,
    force_full: bool = False,
) -> CyclePlan:
    """Read Graph and ServiceNow (fully or incrementally), then plan and guard."""
    reading = read_both(config, conns, state, progress, force_full)
    links = stored_links(state)
    planned = plan_trusted(config, conns, state, reading.snapshot, reading.target, links)
    existing = _existing_groups(planned, reading.snapshot)
    unread = [g for g in existing if g not in reading.member_groups]
    wanted_groups = set(existing)
    rows = [r for r in reading.member_rows.values() if r.get("group") in wanted_groups]
    rows += target_io.read_memberships(conns.servicenow, unread) if unread else []
    planned = with_memberships(planned, rows, links[MEMBERSHIP], links[KEPT])
    notes = incomplete_target(_table_reads(planned, rows, links), config.safety.target_min_share)
    for note in notes:
        log.warning(
            "TargetIncomplete: %s. This cycle disables nothing, removes no membership and "
            "creates nothing that snsync has a link for",
            note,
        )
    planned = replace(planned, target_incomplete=notes)
    # Rows are kept only for the groups read here: a group left out (unassigned) must be read
    # again when it returns, or its rows would be created a second time.
    member_groups = (reading.member_groups & wanted_groups) | set(unread)
    planned = replace(planned, reading=replace(reading, member_groups=member_groups))
    return guard(planned, config, state, allow_disables)


def read_both(
    config: Config,
    conns: Connections,
    state: State,
    progress: Progress | None,
    force_full: bool,
) -> Reading:
    """Read incrementally when the saved state allows it, else (or on an expired delta) fully."""
    user_fields = target_fields(make_mapper(config), "user_name")
    group_fields = target_fields(make_group_mapper(config), "name")
    mode, reason = choose_mode(config, state, force_full, time.time())
    if mode == "incremental":
        try:
            return read_incremental(config, conns, state, progress, user_fields, group_fields)
        except DeltaExpired:
            reason = "the Graph delta link expired (410 syncStateNotFound)"
    tables = reference_tables([*config.mappings.users, *config.mappings.groups])
    return read_full(config, conns, progress, user_fields, group_fields, tables, reason)


def guard(planned: CyclePlan, config: Config, state: State, allow_disables: bool) -> CyclePlan:
    """Apply the guards: incomplete source, back-off of failing objects, disable threshold."""
    waiting = _waiting(state)
    limits = config.safety.max_disables
    held: list[Held] = []
    unseen = planned.target_incomplete
    links = stored_links(state)

    def table(tp: TablePlan, limit: DisableLimit, kind: str) -> TablePlan:
        items = hold_for_incomplete_source(tp.plan.items, planned.snapshot.incomplete)
        items = hold_for_incomplete_target(items, unseen, links[kind])
        items, hold = hold_disables(
            wait_for_backoff(items, waiting), limit, len(tp.links), allow_disables
        )
        if hold:
            held.append(hold)
        stale = () if unseen else tp.stale_links  # a link is not stale when its table was unseen
        return replace(tp, plan=replace(tp.plan, items=items), stale_links=stale)

    users = table(planned.users, limits.users, USER)
    groups = table(planned.groups, limits.groups, GROUP)
    members = guard_memberships(
        planned.memberships, planned.snapshot, waiting, unseen, links[MEMBERSHIP]
    )
    return replace(planned, users=users, groups=groups, memberships=members, held=tuple(held))


def guard_memberships(
    memberships: MembershipPlan,
    snapshot: SourceSnapshot,
    waiting: Sequence[Waiting],
    unseen: Sequence[str] = (),
    owned: Mapping[str, str] | None = None,
) -> MembershipPlan:
    """The membership guards: no removal on an incomplete source or target; back-off."""
    memberships = hold_memberships_for_incomplete_target(memberships, unseen, owned or {})
    items = hold_for_incomplete_source(memberships.plan.items, snapshot.incomplete)
    items = wait_for_backoff(items, waiting)
    return replace(memberships, plan=replace(memberships.plan, items=items))


def run_cycle(
    config: Config,
    conns: Connections,
    state: State,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_result: OnResult | None = None,
    allow_disables: bool = False,
    force_full: bool = False,
) -> CycleReport:
    """Run one cycle (full or incremental); in a dry run nothing is written anywhere."""
    started = time.monotonic()
    cycle_id = None if dry_run else state.start_cycle("starting")
    try:
        planned = read_and_plan(config, conns, state, progress, allow_disables, force_full)
    except Exception as exc:
        if cycle_id is not None:
            state.end_cycle(cycle_id, f"error: {exc}", {}, requests_made(conns))
        raise
    if cycle_id is not None and planned.reading is not None:
        state.set_cycle_kind(cycle_id, planned.reading.mode)
    if cycle_id is not None:
        # Until this cycle records what it saw and wrote, the next one reads everything: a
        # killed cycle's writes are invisible to an incremental read (they are snsync's own).
        require_full_next(state)
        on_result = journaling(state, on_result)
    concurrency = config.servicenow.max_concurrency

    def run(items: Sequence[PlanItem], object_type: str) -> list[Result]:
        table = TABLES.get(object_type, object_type)
        return execute(
            items,
            conns.servicenow,
            table,
            concurrency=concurrency,
            dry_run=dry_run,
            on_result=on_result,
        )

    results: list[Result] = []
    if progress:
        progress(TO_APPLY, sum(1 for item in planned.items() if item.writes))
    missing = planned.users.plan.missing | planned.groups.plan.missing
    if config.references.create_missing and missing and not dry_run:
        for table, items in reference_creates(missing).items():
            results += run(items, table)
        planned = _replan_with_references(config, planned, results, stored_links(state))
        planned = guard(planned, config, state, allow_disables)
    user_links = dict(planned.users.links)
    # A matched (adopted) manager's record is known before it is written: reports can point at
    # it in the first pass. Used for references only; links come from successful writes.
    matched = {i.directory_id: i.sys_id for i in planned.users.plan.items if i.adopt and i.sys_id}
    for wave in execution_waves(planned.users.plan.items):
        done = run([with_references(item, {**matched, **user_links}) for item in wave], USER)
        results += done
        user_links.update(new_links(done))
    results += run(
        plan_deferred([r.item for r in results], results, {**matched, **user_links}), USER
    )
    group_results = run(planned.groups.plan.items, GROUP)
    group_links = {**planned.groups.links, **new_links(group_results)}
    if dry_run:
        memberships = planned.memberships
    else:
        owned = state.links(MEMBERSHIP)
        memberships = plan_memberships(
            _wanted(planned.snapshot),
            group_links,
            user_links,
            planned.member_rows,
            owned,
            planned.names,
            kept=state.links(KEPT),
            frozen=planned.users.frozen | planned.groups.frozen,
            account=planned.trust.account if planned.trust else "",
        )
        memberships = guard_memberships(
            memberships, planned.snapshot, _waiting(state), planned.target_incomplete, owned
        )
    member_results = run(memberships.plan.items, MEMBERSHIP)
    results += group_results + member_results
    report = CycleReport(
        cycle_id, dry_run, time.monotonic() - started, planned, tuple(results), requests_made(conns)
    )
    if cycle_id is not None:
        _record(config, state, cycle_id, report, user_links, group_links, memberships)
    return report


def reference_creates(missing: Iterable[tuple[str, str]]) -> dict[str, list[PlanItem]]:
    """Create items for missing reference records (references.create_missing), by table."""
    items: dict[str, list[PlanItem]] = {}
    for table, value in sorted(missing):
        item = PlanItem(
            Action.CREATE,
            f"{table}:{value}",
            value,
            None,
            (Change("name", None, value),),
            message="created because references.create_missing is on",
            object_type=table,
        )
        items.setdefault(table, []).append(item)
    return items


def _replan_with_references(
    config: Config,
    planned: CyclePlan,
    created: Sequence[Result],
    links: Mapping[str, Mapping[str, str]],
) -> CyclePlan:
    references = {table: dict(rows) for table, rows in planned.target.references.items()}
    for r in created:
        if r.sys_id and r.status in (Status.SUCCESS, Status.WARNING):
            references.setdefault(r.item.object_type, {})[r.item.display_name.lower()] = r.sys_id
    target = replace(planned.target, references=references)
    replanned = plan_from(config, planned.snapshot, target, links, planned.trust)
    replanned = replace(replanned, target_incomplete=planned.target_incomplete)
    return with_memberships(
        replanned, planned.member_rows, links.get(MEMBERSHIP, {}), links.get(KEPT, {})
    )


def requests_made(conns: Connections) -> dict[str, int]:
    return {
        "graph_reads": conns.graph_http.counter.reads + conns.graph_http.counter.writes,
        "servicenow_reads": conns.servicenow_http.counter.reads,
        "servicenow_writes": conns.servicenow_http.counter.writes,
        "retries": conns.graph_http.counter.retries + conns.servicenow_http.counter.retries,
    }


def new_links(results: Sequence[Result]) -> dict[str, str]:
    """Links made by this cycle's successful creates and adoptions."""
    return {
        r.item.directory_id: r.sys_id
        for r in results
        if r.sys_id
        and r.status in (Status.SUCCESS, Status.WARNING)
        and (r.item.action is Action.CREATE or r.item.adopt)
    }


def _plan_table(
    mapper: Mapper,
    options: PlanOptions,
    objects: Mapping[str, SourceObject],
    records: Mapping[str, Record],
    target: TargetSnapshot,
    stored: Mapping[str, str],
) -> TablePlan:
    links = effective_links(stored, records, options)
    relevant = [o for o in objects.values() if o.in_scope or o.id in links]
    desired = tuple(mapper.desired(o) for o in relevant)
    plan = plan_objects(desired, records, target.references, links, options)
    stale = tuple(sorted(set(stored) - set(links)))
    return TablePlan(plan, desired, links, stale, protected_links(links, records, options))


def _table_reads(
    planned: CyclePlan, rows: Sequence[Record], links: Mapping[str, Mapping[str, str]]
) -> list[TableRead]:
    """How much of each managed table came back, against the links snsync holds for it."""
    target = planned.target
    read_groups = {r.get("group", "") for r in rows} | set(
        _existing_groups(planned, planned.snapshot)
    )
    row_ids = {r["sys_id"] for r in rows}
    group_ids = {d for d, s in links[GROUP].items() if s in read_groups}
    owned = {k: s for k, s in links[MEMBERSHIP].items() if k.split(":", 1)[0] in group_ids}
    return [
        TableRead(
            target_io.USER_TABLE,
            len(target.users),
            len(links[USER]),
            sum(1 for s in links[USER].values() if s in target.users),
            never_empty=True,
        ),
        TableRead(
            target_io.GROUP_TABLE,
            len(target.groups),
            len(links[GROUP]),
            sum(1 for s in links[GROUP].values() if s in target.groups),
        ),
        TableRead(
            MEMBERSHIP_TABLE, len(rows), len(owned), sum(1 for s in owned.values() if s in row_ids)
        ),
    ]


def _waiting(state: State) -> list[Waiting]:
    """Objects whose writes wait out a back-off, from the escrow in the state file."""
    return [
        Waiting(e.object_type, e.directory_id, e.failures, e.next_attempt) for e in state.escrow()
    ]


def _wanted(snapshot: SourceSnapshot) -> dict[str, tuple[str, ...]]:
    """Members wanted per in-scope group: its directory members that are in scope."""
    return {
        gid: tuple(u for u in members if u in snapshot.users and snapshot.users[u].in_scope)
        for gid, members in snapshot.members.items()
        if gid in snapshot.groups
    }


def _with_placeholders(table: TablePlan) -> dict[str, str]:
    """Links as they will be after the plan runs: new records under a '(new)' placeholder."""
    links = dict(table.links)
    for item in table.plan.items:
        if item.action is Action.CREATE and item.writes:
            links[item.directory_id] = "(new)"
        elif item.adopt and item.sys_id:
            links[item.directory_id] = item.sys_id
    return links


def _existing_groups(planned: CyclePlan, snapshot: SourceSnapshot) -> list[str]:
    """sys_ids of existing in-scope groups (linked or about to be adopted): whose rows to read."""
    links = _with_placeholders(planned.groups)
    return [links[g] for g in snapshot.groups if links.get(g, "(new)") != "(new)"]


def _save_reading(
    config: Config,
    state: State,
    planned: CyclePlan,
    reading: Reading,
    results: Sequence[Result],
) -> None:
    created_groups = {
        r.sys_id
        for r in results
        if r.item.object_type == GROUP and r.item.action is Action.CREATE and r.sys_id
    }
    fields = {
        USER: target_fields(make_mapper(config), "user_name"),
        GROUP: target_fields(make_group_mapper(config), "name"),
    }
    rows = {r["sys_id"]: r for r in planned.member_rows}
    save_reading(
        state,
        config,
        reading,
        planned.target,
        rows,
        results,
        fields,
        reading.member_groups | created_groups,
    )
    # A create that failed in flight may have landed: only a full read can adopt it.
    if any(r.item.action is Action.CREATE and r.reason == Reason.TRANSIENT for r in results):
        require_full_next(state)


def _record(
    config: Config,
    state: State,
    cycle_id: int,
    report: CycleReport,
    user_links: dict[str, str],
    group_links: dict[str, str],
    memberships: MembershipPlan,
) -> None:
    planned = report.planned
    for object_type, table, links in (
        (USER, planned.users, user_links),
        (GROUP, planned.groups, group_links),
    ):
        if table.stale_links:
            state.drop_links(object_type, table.stale_links)
        state.save_links(object_type, links)
    member_results = [r for r in report.results if r.item.object_type == MEMBERSHIP]
    removed = [
        r.item.directory_id
        for r in member_results
        if r.item.action is Action.DELETE and r.status is Status.SUCCESS
    ]
    for kind in (MEMBERSHIP, KEPT):
        state.drop_links(kind, [*removed, *memberships.forgotten])
    state.save_links(KEPT, memberships.adopted)
    state.save_links(MEMBERSHIP, {**memberships.recovered, **new_links(member_results)})
    state.log_results(cycle_id, report.results)
    writes = [r for r in report.results if r.item.writes]
    state.update_escrow(
        [r for r in writes if r.status is Status.FAILURE],
        [r for r in writes if r.status is not Status.FAILURE],
        config.safety.retry_backoff,
    )
    state.put(HELD_KEY, [h.__dict__ for h in planned.held] or None)
    if planned.reading is not None:
        _save_reading(config, state, planned, planned.reading, report.results)
    counts = {
        "by_action": report.counts(),
        "unchanged": planned.unchanged,
        "in_scope": planned.in_scope,
        "duration_s": round(report.duration_s, 3),
    }
    outcome = "failures" if report.failures() else "success"
    state.end_cycle(cycle_id, outcome, counts, report.requests)
