"""One sync cycle for users: read both sides, map, plan, execute, then record links and the
provisioning log. Each step is another module's job; this one only puts them in order."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from snsync.config import AttributeMapping, Config
from snsync.connections import Connections
from snsync.engine.executor import OnResult, execute
from snsync.engine.model import (
    Action,
    Desired,
    Plan,
    PlanItem,
    Result,
    SourceSnapshot,
    Status,
    TargetSnapshot,
)
from snsync.engine.planner import (
    PlanOptions,
    effective_links,
    execution_waves,
    plan_deferred,
    plan_users,
    with_references,
)
from snsync.errors import ExitCode
from snsync.graph import source
from snsync.mapping.expressions import EvalContext, parse, referenced_attributes
from snsync.mapping.mapper import Mapper
from snsync.servicenow import target as target_io
from snsync.state import State

USER = "user"
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class CyclePlan:
    """Everything planned for one cycle, with what it was computed from."""

    plan: Plan
    desired: tuple[Desired, ...]
    links: dict[str, str]
    stale_links: tuple[str, ...]
    source_users: int
    in_scope: int


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
        """Results by action, then by status."""
        table: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = table.setdefault(r.item.action.value, {})
            row[r.status.value] = row.get(r.status.value, 0) + 1
        return table

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status is Status.FAILURE]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OBJECT_FAILURES if self.failures() else ExitCode.OK


def plan_options(config: Config, mapper: Mapper) -> PlanOptions:
    """Planner options from the config."""
    actions = config.safety.actions
    return PlanOptions(
        matching_fields=mapper.matching_fields,
        link_field=config.mappings.link_field,
        link_prefix=config.mappings.link_prefix,
        create=actions.create,
        update=actions.update,
        disable=actions.disable,
        skip_out_of_scope_deletions=config.safety.skip_out_of_scope_deletions,
    )


def source_attributes(config: Config) -> set[str]:
    """Every directory attribute the user mappings and scoping filters read."""
    names: set[str] = set()
    for m in config.mappings.users:
        if m.kind == "direct" and m.source:
            names.add(m.source)
        elif m.kind == "expression" and m.expression:
            names |= referenced_attributes(parse(m.expression))
    for clauses in config.scope.filters:
        names |= {c.attribute for c in clauses}
    return names


def target_fields(config: Config, mapper: Mapper) -> list[str]:
    """The sys_user fields a cycle reads."""
    extra = [config.mappings.link_field] if config.mappings.link_field else []
    return list(dict.fromkeys([*mapper.targets, *extra, "user_name", "active"]))


def reference_tables(mappings: Iterable[AttributeMapping]) -> set[str]:
    return {m.reference for m in mappings if m.reference}


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


def plan_from(
    config: Config,
    snapshot: SourceSnapshot,
    target: TargetSnapshot,
    stored_links: dict[str, str],
) -> CyclePlan:
    """Map and plan (pure): desired records for in-scope and linked users, against the target."""
    mapper = make_mapper(config, target)
    options = plan_options(config, mapper)
    links = effective_links(stored_links, target, options)
    relevant = [u for u in snapshot.users.values() if u.in_scope or u.id in links]
    desired = tuple(mapper.desired(u) for u in relevant)
    plan = plan_users(desired, target, links, options)
    stale = tuple(sorted(set(stored_links) - set(links)))
    in_scope = sum(1 for u in snapshot.users.values() if u.in_scope)
    return CyclePlan(plan, desired, links, stale, len(snapshot.users), in_scope)


def read_and_plan(
    config: Config, conns: Connections, state: State, progress: Progress | None = None
) -> CyclePlan:
    """Read Graph and ServiceNow, then plan."""
    app = source.read_app_scope(conns.graph, config, progress)
    users = source.read_users(
        conns.graph, source_attributes(config), config.graph.page_size, progress
    )
    snapshot = source.build_snapshot(users, app, config)
    mapper = make_mapper(config)
    target = target_io.read_target(
        conns.servicenow,
        target_fields(config, mapper),
        reference_tables(config.mappings.users),
        progress,
    )
    return plan_from(config, snapshot, target, state.links(USER))


def run_cycle(
    config: Config,
    conns: Connections,
    state: State,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_result: OnResult | None = None,
) -> CycleReport:
    """Run one full cycle for users; in a dry run nothing is written anywhere."""
    started = time.monotonic()
    cycle_id = None if dry_run else state.start_cycle("full")
    try:
        planned = read_and_plan(config, conns, state, progress)
    except Exception as exc:
        if cycle_id is not None:
            state.end_cycle(cycle_id, f"error: {exc}", {}, requests_made(conns))
        raise
    concurrency = config.servicenow.max_concurrency

    def run(items: Sequence[PlanItem]) -> list[Result]:
        return execute(
            items,
            conns.servicenow,
            target_io.USER_TABLE,
            concurrency=concurrency,
            dry_run=dry_run,
            on_result=on_result,
        )

    links = dict(planned.links)
    results: list[Result] = []
    for wave in execution_waves(planned.plan.items):
        done = run([with_references(item, links) for item in wave])
        results += done
        links.update(new_links(done))
    results += run(plan_deferred([r.item for r in results], results, links))
    report = CycleReport(
        cycle_id,
        dry_run,
        time.monotonic() - started,
        planned,
        tuple(results),
        requests_made(conns),
    )
    if not dry_run and cycle_id is not None:
        _record(state, cycle_id, planned, links, report)
    return report


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


def _record(
    state: State, cycle_id: int, planned: CyclePlan, links: dict[str, str], report: CycleReport
) -> None:
    if planned.stale_links:
        state.drop_links(USER, planned.stale_links)
    state.save_links(USER, links)
    state.log_results(cycle_id, USER, report.results)
    counts = {
        "by_action": report.counts(),
        "unchanged": planned.plan.unchanged,
        "in_scope": planned.in_scope,
        "duration_s": round(report.duration_s, 3),
    }
    outcome = "failures" if report.failures() else "success"
    state.end_cycle(cycle_id, outcome, counts, report.requests)
