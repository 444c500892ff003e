"""Provision on demand: one user, step by step (import, scope, match, action), with every
decision explained. Reads only what that one user needs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from snsync.config import Config
from snsync.connections import Connections
from snsync.engine.cycle import (
    USER,
    CycleReport,
    make_mapper,
    new_links,
    plan_trusted,
    requests_made,
    target_fields,
)
from snsync.engine.executor import execute
from snsync.engine.model import Record, SourceSnapshot, TargetSnapshot
from snsync.engine.scope import ScopeDecision, decide_scope
from snsync.engine.snapshot import reference_tables, source_attributes
from snsync.errors import NotFoundError
from snsync.graph import source
from snsync.servicenow import target as target_io
from snsync.state import State

Say = Callable[[str, str], None]


@dataclass(frozen=True)
class OnDemandOutcome:
    report: CycleReport
    in_scope: bool


def provision_user(
    config: Config, conns: Connections, state: State, user_ref: str, *, dry_run: bool, say: Say
) -> OnDemandOutcome:
    """Provision one user now; `say(step, detail)` reports each step as it happens."""
    started = time.monotonic()
    attributes = source_attributes(config)
    params = {"$select": ",".join(source.graph_select(attributes))}
    if "manager" in attributes:
        params["$expand"] = "manager($select=id)"
    try:
        raw = conns.graph.get(f"users/{user_ref}", params)
    except NotFoundError:
        raise NotFoundError(
            f"no directory user '{user_ref}': give a userPrincipalName or object id",
            service="graph",
            status=404,
        ) from None
    say(
        "import",
        f"{raw.get('displayName')} <{raw.get('userPrincipalName')}> id {raw.get('id')}, "
        f"accountEnabled={raw.get('accountEnabled')}",
    )
    app = source.read_app_scope(conns.graph, config)
    decision = decide_scope(raw, app.assignments, app.group_members, app.roles, config.scope)
    say("scope", ("in scope: " if decision.in_scope else "not in scope: ") + decision.reason)
    snapshot = source.build_snapshot([raw], app, config, whole_directory=False)
    user = snapshot.users[str(raw["id"])]
    links = state.links(USER)
    target = _target_for(config, conns, user.id, user.attributes, links)
    found = ", ".join(f"{r.get('user_name')} ({s})" for s, r in target.users.items()) or "none"
    say("match", f"ServiceNow records considered: {found}")
    alone = SourceSnapshot({user.id: user})
    planned = plan_trusted(config, conns, state, alone, target, {USER: links}, False)
    items = tuple(i for i in planned.users.plan.items if i.directory_id == user.id)
    if not items:
        say("action", "nothing to do: the ServiceNow record already matches")
    for item in items:
        adopted = " (adopting the matched record)" if item.adopt else ""
        say("action", f"{item.action.value}{adopted}: {item.message or item.reason or ''}".strip())
        for change in item.changes:
            say("attribute", f"{change.field}: {change.old!r} -> {change.new!r}")
    cycle_id = None if dry_run else state.start_cycle("on-demand")
    results = execute(items, conns.servicenow, target_io.USER_TABLE, dry_run=dry_run)
    for r in results:
        say(
            "result",
            f"{r.status.value}"
            + (f" [{r.reason}] {r.message}" if r.reason else "")
            + (" (dry run: nothing written)" if dry_run else ""),
        )
    report = CycleReport(
        cycle_id, dry_run, time.monotonic() - started, planned, tuple(results), requests_made(conns)
    )
    if cycle_id is not None:
        # Only this user's new link: the partial target read here says nothing about others.
        state.save_links(USER, new_links(results))
        state.log_results(cycle_id, results)
        outcome = "failures" if report.failures() else "success"
        state.end_cycle(cycle_id, outcome, {"by_action": report.counts()}, report.requests)
    return OnDemandOutcome(report, decision.in_scope)


def _target_for(
    config: Config,
    conns: Connections,
    user_id: str,
    attributes: Mapping[str, Any],
    links: dict[str, str],
) -> TargetSnapshot:
    """Just the ServiceNow records this user could touch: linked, stamped or matching, plus the
    manager's record so the manager reference resolves."""
    mapper = make_mapper(config)
    fields = target_fields(mapper, "user_name")
    client = conns.servicenow
    wanted = mapper.desired(source.source_user(attributes, ScopeDecision(True, ""))).values
    clauses = [f"{f}={_escape(wanted[f])}" for f in mapper.matching_fields if wanted.get(f)]
    if config.mappings.link_field:
        clauses.append(f"{config.mappings.link_field}={mapper.link_value(user_id)}")
    records: dict[str, Record] = {}
    for clause in clauses:
        for row in client.read_all(target_io.USER_TABLE, fields, clause):
            records[row["sys_id"]] = row
    for directory_id in filter(None, (user_id, attributes.get("manager"))):
        sys_id = links.get(str(directory_id))
        if sys_id and sys_id not in records:
            with suppress(NotFoundError):
                records[sys_id] = client.get(target_io.USER_TABLE, sys_id, fields)
    refs = target_io.read_references(client, reference_tables(config.mappings.users))
    return TargetSnapshot(records, refs)


def _escape(value: str) -> str:
    return value.replace("^", "^^")
