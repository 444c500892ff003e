"""Provision on demand: one user, step by step (import, scope, match, action), with every
decision explained. Reads only what that one user needs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, quote_plus

from snsync.config import Config
from snsync.connections import Connections
from snsync.engine.batched import Batching
from snsync.engine.cycle import CycleReport, plan_trusted
from snsync.engine.directory import build_snapshot, refuse_over_long, source_user
from snsync.engine.executor import execute_waves
from snsync.engine.journal import journaling
from snsync.engine.memberships import MembershipPlan
from snsync.engine.plan import (
    CyclePlan,
    desired,
    make_group_mapper,
    make_mapper,
    plan_options,
    plan_table,
)
from snsync.engine.planner import with_trust
from snsync.engine.ports import Ports, ports_for
from snsync.engine.reading import reference_tables, source_attributes, target_fields
from snsync.engine.record import new_links, result_counts
from snsync.engine.scope import decide_scope
from snsync.engine.trust import Trust
from snsync.errors import ConfigError, NotFoundError
from snsync.mapping.mapper import Mapper
from snsync.model import (
    USER_TABLE,
    Action,
    Held,
    ObjectType,
    Picture,
    Plan,
    PlanItem,
    Record,
    Result,
    ScopeDecision,
    SourceObject,
    SourceSnapshot,
    Status,
    TargetSnapshot,
)
from snsync.redact import register
from snsync.state import CycleRecord, LinkChanges, State

Say = Callable[[str, str], None]
USER = ObjectType.USER


@dataclass(frozen=True)
class OnDemandOutcome:
    report: CycleReport
    in_scope: bool


def provision_user(
    config: Config, conns: Connections, state: State, user_ref: str, *, dry_run: bool, say: Say
) -> OnDemandOutcome:
    """Provision one user now; `say(step, detail)` reports each step as it happens."""
    return provision(config, ports_for(config, conns, state), user_ref, dry_run=dry_run, say=say)


def provision(
    config: Config, ports: Ports, user_ref: str, *, dry_run: bool, say: Say
) -> OnDemandOutcome:
    """Provision one user through the ports (see provision_user)."""
    try:
        raw = ports.directory.user(user_ref, source_attributes(config))
    except NotFoundError as exc:  # the admin named someone who is not there: usage, exit 2
        raise ConfigError(str(exc)) from None
    return provision_found_user(config, ports, raw, dry_run=dry_run, say=say)


def provision_found_user(
    config: Config, ports: Ports, raw: Mapping[str, Any], *, dry_run: bool, say: Say
) -> OnDemandOutcome:
    """Provision one user, as Graph returned it."""
    started = time.monotonic()
    say(
        "import",
        f"{raw.get('displayName')} <{raw.get('userPrincipalName')}> id {raw.get('id')}, "
        f"accountEnabled={raw.get('accountEnabled')}",
    )
    app = ports.directory.app_scope()
    decision = decide_scope(raw, app.assignments, app.group_members, app.roles, config.scope)
    say("scope", ("in scope: " if decision.in_scope else "not in scope: ") + decision.reason)
    bounded, refused = refuse_over_long([raw], config.limits.max_attribute_length)
    snapshot = build_snapshot(bounded, app, config.scope, whole_directory=False, refused=refused)
    user = snapshot.users[str(raw["id"])]
    links = ports.state.links(USER)
    target = _target_for(config, ports, user.id, user.attributes, links)
    found = ", ".join(f"{r.get('user_name')} ({s})" for s, r in target.users.items()) or "none"
    say("match", f"ServiceNow records considered: {found}")
    picture = Picture(SourceSnapshot({user.id: user}), target)
    planned = plan_trusted(config, ports, lambda trust: _plan_one(config, picture, links, trust))
    items = tuple(i for i in planned.users.plan.items if i.directory_id == user.id)
    held = tuple(h for h in ports.state.held_disables() if h.object_type == USER)
    items, holding = keep_held(items, held, say)
    if holding:
        planned = replace(planned, held=holding)
    elif not items:
        say("action", nothing_to_do(user.in_scope, bool(target.users)))
    say_plan(items, say)
    cycle_id = None if dry_run else ports.state.start_cycle("on-demand")
    results = execute_on_demand(ports, (items,), cycle_id, dry_run=dry_run)
    for r in results:
        say("result", result_text(r, dry_run))
    duration = time.monotonic() - started
    report = CycleReport(cycle_id, dry_run, duration, planned, tuple(results), ports.requests())
    if cycle_id is not None:
        # Only this user's new link: the partial target read here says nothing about others.
        record_on_demand(ports, report, {USER: LinkChanges(new_links(results))})
    return OnDemandOutcome(report, decision.in_scope)


def execute_on_demand(
    ports: Ports,
    waves: Sequence[Sequence[PlanItem]],
    cycle_id: int | None,
    *,
    dry_run: bool,
    batching: Batching | None = None,
) -> Sequence[Result]:
    """The waves executed as a cycle executes them: each confirmed create or adoption linked at
    once (journaled), and the next cycle full until this one is recorded."""
    on_result = None
    if cycle_id is not None and any(i.writes for wave in waves for i in wave):
        ports.state.require_full_next()
        on_result = journaling(ports.state)
    return execute_waves(
        waves, ports.target, dry_run=dry_run, on_result=on_result, batching=batching
    )


def record_on_demand(
    ports: Ports, report: CycleReport, links: Mapping[ObjectType, LinkChanges]
) -> None:
    """The provisioning log and the links of an on-demand run, as a cycle records them. The next
    cycle is full: an incremental read does not see snsync's own writes, and these are not in
    the picture the last cycle saved."""
    assert report.cycle_id is not None
    results = report.results
    failed = any(r.status is Status.FAILURE for r in results)
    counts = {"by_action": result_counts(results)}
    outcome = "failures" if failed else "success"
    wrote = any(r.item.writes for r in results)
    record = CycleRecord(
        report.cycle_id, outcome, counts, report.requests, results, links, full_next=wrote
    )
    ports.state.record_cycle(record)


def result_text(result: Result, dry_run: bool) -> str:
    """A result as the `result` step says it."""
    return (
        f"{result.status.value}"
        + (f" [{result.reason}] {result.message}" if result.reason else "")
        + (" (dry run: nothing written)" if dry_run else "")
    )


def _plan_one(
    config: Config, picture: Picture, links: Mapping[str, str], trust: Trust
) -> CyclePlan:
    """The users table plan for the one user: no guards (on demand is the admin's decision),
    no groups, no memberships, no reference records created."""
    mapper = make_mapper(config.mappings, picture.target)
    # One user read: another's claim through an earlier matching attribute cannot be seen.
    options = with_trust(plan_options(config, mapper), replace(trust, whole_directory=False))
    records = picture.target.users
    wanted = desired(mapper, picture.source.users, records, links, options)
    users = plan_table(wanted, records, picture.target.references, links, options)
    groups = plan_table((), {}, {}, {}, plan_options(config, make_group_mapper(config)))
    memberships = MembershipPlan(Plan(()), {}, ())
    in_scope = sum(1 for u in picture.source.users.values() if u.in_scope)
    waves = (users.plan.items,)
    return CyclePlan(users, groups, memberships, (), waves, picture, in_scope)


def keep_held(
    items: tuple[PlanItem, ...], held: tuple[Held, ...], say: Say
) -> tuple[tuple[PlanItem, ...], tuple[Held, ...]]:
    """While the threshold holds disables, a disable planned on demand stays held with them:
    the items without it, and the held disables when one was dropped."""
    if not held or not any(i.action is Action.DISABLE for i in items):
        return items, ()
    kind = held[0].object_type
    say(
        "action",
        f"Disable held: {held[0].count} {kind} disables are held by safety.max_disables "
        f"({held[0].limit_text}) and this one stays held with them; release them with: "
        "snsync approve",
    )
    return tuple(i for i in items if i.action is not Action.DISABLE), held


def nothing_to_do(in_scope: bool, has_record: bool, kind: str = "user") -> str:
    """The `action` step when nothing is planned, saying why."""
    if in_scope and has_record:
        return "nothing to do: the ServiceNow record already matches"
    if in_scope:
        return "nothing to do (see the scope and match steps above)"
    if has_record:
        return "nothing to do: out of scope, and the ServiceNow record needs no change"
    return (
        f"nothing to do: the {kind} is out of scope and has no ServiceNow record (snsync "
        f"creates records only for {kind}s in scope)"
    )


def say_plan(items: Sequence[PlanItem], say: Say, step: str = "action") -> None:
    """The `action` (or `membership`) and `attribute` steps of planned items."""
    for item in items:
        adopted = " (adopting the matched record)" if item.adopt else ""
        what = f"{item.display_name}: " if step != "action" else ""
        detail = f"{what}{item.action.value}{adopted}: {item.message or item.reason or ''}"
        say(step, detail.strip().rstrip(":"))
        for change in item.changes:
            say("attribute", f"{change.field}: {change.shown_old!r} -> {change.shown_new!r}")


def _target_for(
    config: Config,
    ports: Ports,
    user_id: str,
    attributes: Mapping[str, Any],
    links: Mapping[str, str],
) -> TargetSnapshot:
    """Just the ServiceNow records this user could touch: linked, stamped or matching, plus the
    manager's record so the manager reference resolves."""
    records = user_records(config, ports, user_id, attributes, links)
    refs = ports.target.references(reference_tables(config.mappings.users))
    return TargetSnapshot(records, refs)


def user_records(
    config: Config,
    ports: Ports,
    user_id: str,
    attributes: Mapping[str, Any],
    links: Mapping[str, str],
) -> dict[str, Record]:
    """The sys_user records one user could touch, and the manager's linked record."""
    mapper = make_mapper(config.mappings)
    fields = target_fields(mapper, "user_name")
    source = source_user(attributes, ScopeDecision(True, ""))
    records = candidates(ports, USER_TABLE, mapper, source, fields)
    for directory_id in filter(None, (user_id, attributes.get("manager"))):
        sys_id = links.get(str(directory_id))
        if sys_id and sys_id not in records:
            with suppress(NotFoundError):
                records[sys_id] = ports.target.get(USER_TABLE, sys_id, fields)
    return records


def candidates(
    ports: Ports, table: str, mapper: Mapper, source: SourceObject, fields: Sequence[str]
) -> dict[str, Record]:
    """Records of `table` an object could be matched or linked to: by each matching value, and
    by the stamp in the link field (trust is decided by the planner, never here)."""
    wanted = mapper.desired(source).values
    clauses = [(f, wanted[f]) for f in mapper.matching_fields if wanted.get(f)]
    # A redacted matching value goes into a query URL: masked in -vv lines and messages.
    for value in (v for f, v in clauses if f in mapper.redacted_targets):
        register(value, quote(value, safe=""), quote_plus(value))
    if mapper.link_field:
        clauses.append((mapper.link_field, mapper.link_value(source.id)))
    records: dict[str, Record] = {}
    for field, value in clauses:
        for row in ports.target.find(table, fields, field, value):
            records[row["sys_id"]] = row
    return records
