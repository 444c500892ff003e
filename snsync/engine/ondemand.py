"""Provision on demand: one user, step by step (import, scope, match, action), with every
decision explained. Reads only what that one user needs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, quote_plus

from snsync.config import Config
from snsync.connections import Connections
from snsync.engine.cycle import CycleReport, plan_trusted
from snsync.engine.directory import build_snapshot, refuse_over_long, source_user
from snsync.engine.executor import execute
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
from snsync.model import (
    USER_TABLE,
    Action,
    ObjectType,
    Picture,
    Plan,
    Record,
    ScopeDecision,
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
    started = time.monotonic()
    try:
        raw = ports.directory.user(user_ref, source_attributes(config))
    except NotFoundError as exc:  # the admin named someone who is not there: usage, exit 2
        raise ConfigError(str(exc)) from None
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
    if held and any(i.action is Action.DISABLE for i in items):
        # The threshold holds every disable until an admin approves: this one stays with them.
        items = tuple(i for i in items if i.action is not Action.DISABLE)
        planned = replace(planned, held=held)
        say(
            "action",
            f"Disable held: {held[0].count} user disables are held by safety.max_disables "
            f"({held[0].limit_text}) and this one stays held with them; release them with: "
            "snsync approve",
        )
    elif not items:
        say("action", _nothing_to_do(user.in_scope, bool(target.users)))
    _say_plan(items, say)
    cycle_id = None if dry_run else ports.state.start_cycle("on-demand")
    results = execute(items, ports.target, dry_run=dry_run)
    for r in results:
        say(
            "result",
            f"{r.status.value}"
            + (f" [{r.reason}] {r.message}" if r.reason else "")
            + (" (dry run: nothing written)" if dry_run else ""),
        )
    duration = time.monotonic() - started
    report = CycleReport(cycle_id, dry_run, duration, planned, tuple(results), ports.requests())
    if cycle_id is not None:
        # Only this user's new link: the partial target read here says nothing about others.
        failed = any(r.status is Status.FAILURE for r in results)
        counts = {"by_action": result_counts(results)}
        made = {USER: LinkChanges(new_links(results))}
        outcome = "failures" if failed else "success"
        ports.state.record_cycle(
            CycleRecord(cycle_id, outcome, counts, report.requests, results, made)
        )
    return OnDemandOutcome(report, decision.in_scope)


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


def _nothing_to_do(in_scope: bool, has_record: bool) -> str:
    if in_scope and has_record:
        return "nothing to do: the ServiceNow record already matches"
    if in_scope:
        return "nothing to do (see the scope and match steps above)"
    if has_record:
        return "nothing to do: out of scope, and the ServiceNow record needs no change"
    return (
        "nothing to do: the user is out of scope and has no ServiceNow record (snsync creates "
        "records only for users in scope)"
    )


def _say_plan(items: tuple[Any, ...], say: Say) -> None:
    for item in items:
        adopted = " (adopting the matched record)" if item.adopt else ""
        say("action", f"{item.action.value}{adopted}: {item.message or item.reason or ''}".strip())
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
    mapper = make_mapper(config.mappings)
    fields = target_fields(mapper, "user_name")
    target = ports.target
    wanted = mapper.desired(source_user(attributes, ScopeDecision(True, ""))).values
    clauses = [(f, wanted[f]) for f in mapper.matching_fields if wanted.get(f)]
    # A redacted matching value goes into a query URL: masked in -vv lines and messages.
    for value in (v for f, v in clauses if f in mapper.redacted_targets):
        register(value, quote(value, safe=""), quote_plus(value))
    if config.mappings.link_field:
        clauses.append((config.mappings.link_field, mapper.link_value(user_id)))
    records: dict[str, Record] = {}
    for field, value in clauses:
        for row in target.find(USER_TABLE, fields, field, value):
            records[row["sys_id"]] = row
    for directory_id in filter(None, (user_id, attributes.get("manager"))):
        sys_id = links.get(str(directory_id))
        if sys_id and sys_id not in records:
            with suppress(NotFoundError):
                records[sys_id] = target.get(USER_TABLE, sys_id, fields)
    refs = target.references(reference_tables(config.mappings.users))
    return TargetSnapshot(records, refs)
