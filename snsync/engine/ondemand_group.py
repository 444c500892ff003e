"""Provision on demand for a group, as Microsoft's portal does it: the group (import, scope,
match, action), then up to `provision.max_group_members` of its members as users, then their
membership rows. Reads only what these objects need, plans with the cycle's own rules (trust,
ownership, membership creators), and writes, journals and logs as a cycle does."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

from snsync.config import Config
from snsync.connections import Connections
from snsync.engine.batched import batching_for
from snsync.engine.cycle import KINDS, CycleReport, plan_trusted
from snsync.engine.directory import assigned_groups, build_snapshot, refuse_over_long, source_group
from snsync.engine.ondemand import (
    OnDemandOutcome,
    Say,
    candidates,
    execute_on_demand,
    keep_held,
    nothing_to_do,
    provision_found_user,
    record_on_demand,
    result_text,
    say_plan,
    user_records,
)
from snsync.engine.ondemand_lookup import member_user, resolve
from snsync.engine.ondemand_plan import Links, members_line, plan_group
from snsync.engine.plan import CyclePlan, make_group_mapper
from snsync.engine.ports import Ports, ports_for
from snsync.engine.reading import reference_tables, source_attributes, target_fields
from snsync.engine.record import membership_links, new_links
from snsync.errors import ConfigError, NotFoundError
from snsync.model import (
    GROUP_TABLE,
    AppScope,
    ObjectType,
    Picture,
    PlanItem,
    Record,
    Result,
    SourceObject,
    SourceSnapshot,
    Status,
    TargetSnapshot,
)
from snsync.state import LinkChanges, State

USER, GROUP = ObjectType.USER, ObjectType.GROUP


def provision_object(
    config: Config,
    conns: Connections,
    state: State,
    ref: str,
    *,
    group: bool = False,
    members: Sequence[str] = (),
    dry_run: bool,
    say: Say,
) -> OnDemandOutcome:
    """Provision the user or group `ref` names (see ondemand_lookup.resolve) now."""
    ports = ports_for(config, conns, state)
    found = resolve(ports.directory, config, ref, group=group)
    if found.kind is USER:
        if members:
            raise ConfigError(f"--member applies to a group; '{ref}' is a user")
        return provision_found_user(config, ports, found.raw, dry_run=dry_run, say=say)
    return provision_group(config, ports, found.raw, chosen=members, dry_run=dry_run, say=say)


@dataclass(frozen=True)
class _Members:
    """The members this run provisions, and what the `members` step says about them."""

    raw: tuple[Mapping[str, Any], ...]
    line: str


def provision_group(
    config: Config,
    ports: Ports,
    raw: Mapping[str, Any],
    *,
    chosen: Sequence[str] = (),
    dry_run: bool,
    say: Say,
) -> OnDemandOutcome:
    """Provision one group (as Graph returned it) and up to the bound of its members."""
    started = time.monotonic()
    app = ports.directory.app_scope()
    group = _group_source(config, raw, app)
    members = app.group_members.get(group.id, ()) if group.in_scope else ()
    relation = "members" if config.scope.expand_nested_groups else "direct members"
    counted = f", {len(members)} user {relation}" if group.in_scope else ""
    say("import", f"group {group.display_name} id {group.id}{counted}")
    say("scope", ("in scope: " if group.in_scope else "not in scope: ") + group.scope_reason)
    links = {kind: ports.state.links(kind) for kind in KINDS}
    records = _group_records(config, ports, group, links[GROUP])
    shown = ", ".join(f"{r.get('name')} ({s})" for s, r in records.items()) or "none"
    say("match", f"ServiceNow records considered: {shown}")
    references = ports.target.references(
        reference_tables([*config.mappings.users, *config.mappings.groups])
    )
    target = TargetSnapshot({}, references, records)
    alone = Picture(SourceSnapshot({}, groups={group.id: group}), target)
    planned = plan_trusted(config, ports, lambda t: plan_group(config, alone, links, t, group.id))
    group_items = planned.groups.plan.items
    planned, group_items = _held(planned, group_items, GROUP, ports, say)
    if not group_items and not planned.held:
        say("action", nothing_to_do(group.in_scope, group.id in planned.groups.links, "group"))
    say_plan(group_items, say)
    blocked = _blocked(group, group_items, planned)
    if blocked:
        say("members", blocked)
    else:
        chosen_members = _members(config, ports, group, members, chosen)
        say("members", chosen_members.line)
        planned = _with_members(config, ports, app, planned, links, group, chosen_members.raw, say)
    cycle_id = None if dry_run else ports.state.start_cycle("on-demand")
    batching = batching_for(config)
    results = execute_on_demand(ports, planned.waves, cycle_id, dry_run=dry_run, batching=batching)
    for r in results:
        say("result", f"{r.item.kind} {r.item.display_name}: {result_text(r, dry_run)}")
    if not results:
        say("result", "nothing written")
    duration = time.monotonic() - started
    report = CycleReport(cycle_id, dry_run, duration, planned, tuple(results), ports.requests())
    if cycle_id is not None:
        record_on_demand(ports, report, _links_made(planned, tuple(results)))
    return OnDemandOutcome(report, group.in_scope)


def _group_source(config: Config, raw: Mapping[str, Any], app: AppScope) -> SourceObject:
    """The group as the mappings see it, in scope when its assignment counts."""
    roles = assigned_groups(app, config.scope)
    group_id = str(raw["id"])
    bounded, refused = refuse_over_long([raw], config.limits.max_attribute_length)
    source = source_group(bounded[0], roles.get(group_id, ""))
    if group_id in refused:
        source = replace(source, refused=refused[group_id])
    if group_id in roles:
        return source
    excluded = any(a.principal_id == group_id for a in app.assignments)
    why = (
        "assigned only with an app role listed in scope.excluded_app_roles"
        if excluded
        else f"not assigned to the app '{app.display_name}' (Enterprise applications > "
        f"{app.display_name} > Users and groups); snsync syncs only assigned groups"
    )
    soft = {**source.attributes, "IsSoftDeleted": True}
    return replace(source, attributes=soft, in_scope=False, scope_reason=why)


def _group_records(
    config: Config, ports: Ports, group: SourceObject, links: Mapping[str, str]
) -> dict[str, Record]:
    """The sys_user_group records the group could touch: linked, stamped or matching."""
    mapper = make_group_mapper(config)
    fields = target_fields(mapper, "name")
    records = candidates(ports, GROUP_TABLE, mapper, group, fields)
    sys_id = links.get(group.id)
    if sys_id and sys_id not in records:
        with suppress(NotFoundError):
            records[sys_id] = ports.target.get(GROUP_TABLE, sys_id, fields)
    return records


def _held(
    planned: CyclePlan, items: tuple[PlanItem, ...], kind: ObjectType, ports: Ports, say: Say
) -> tuple[CyclePlan, tuple[PlanItem, ...]]:
    """Disables held by the threshold stay held: the items without them, the plan saying so."""
    held = tuple(h for h in ports.state.held_disables() if h.object_type == kind)
    kept, holding = keep_held(items, held, say)
    if not holding:
        return planned, items
    dropped = {i.directory_id for i in items} - {i.directory_id for i in kept}
    waves = tuple(
        tuple(i for i in wave if not (i.object_type is kind and i.directory_id in dropped))
        for wave in planned.waves
    )
    held_all = (*planned.held, *(h for h in holding if h not in planned.held))
    return replace(planned, waves=tuple(w for w in waves if w), held=held_all), kept


def _blocked(group: SourceObject, items: Sequence[PlanItem], planned: CyclePlan) -> str:
    """Why the members are not provisioned now, or "" when they are."""
    if not group.in_scope:
        return (
            "none provisioned: the group is not assigned to the app, so it brings no one into scope"
        )
    if group.id in planned.groups.frozen:
        return (
            "none provisioned: the group's ServiceNow record is protected (safety.protected_groups"
            " or built in), so snsync writes no membership row of it"
        )
    item = next(iter(items), None)
    if item is None or (item.writes and item.status is not Status.FAILURE):
        return ""
    return (
        "none provisioned: the group's ServiceNow record cannot be written (see the action "
        "above), so nothing is written for it or its members; fix that, then run this again"
        + (f" ({item.reason})" if item.reason else "")
    )


def _members(
    config: Config,
    ports: Ports,
    group: SourceObject,
    members: Sequence[str],
    chosen: Sequence[str],
) -> _Members:
    """The members to provision now: those chosen with --member, or the first ones as Graph
    lists them, at most provision.max_group_members; the rest wait for the next cycle."""
    bound = config.provision.max_group_members
    if len(chosen) > bound:
        raise ConfigError(
            f"--member given {len(chosen)} times; provision.max_group_members allows {bound}"
        )
    if chosen:
        raw = tuple(
            member_user(ports.directory, config, ref, members, group.display_name)
            for ref in dict.fromkeys(chosen)
        )
        line = members_line(len(members), len(raw), bound, chosen=True)
        return _Members(raw, line)
    read: list[Mapping[str, Any]] = []
    missing = 0
    attributes = source_attributes(config)
    for member_id in members[:bound]:
        try:
            read.append(ports.directory.user(member_id, attributes))
        except NotFoundError:  # deleted since the members were listed
            missing += 1
    line = members_line(len(members), min(len(members), bound), bound, chosen=False)
    if missing:
        line += f"; {missing} of them no longer exist in the directory"
    return _Members(tuple(read), line)


def _with_members(
    config: Config,
    ports: Ports,
    app: AppScope,
    planned: CyclePlan,
    links: Links,
    group: SourceObject,
    raw: Sequence[Mapping[str, Any]],
    say: Say,
) -> CyclePlan:
    """The plan again, with the members as users and their membership rows."""
    bounded, refused = refuse_over_long(raw, config.limits.max_attribute_length)
    snapshot = build_snapshot(bounded, app, config.scope, whole_directory=False, refused=refused)
    users = dict(snapshot.users)
    found = {
        u.id: user_records(config, ports, u.id, u.attributes, links[USER]) for u in users.values()
    }
    records = {sys_id: r for each in found.values() for sys_id, r in each.items()}
    group_sys = _group_sys_id(planned, group.id)
    rows = ports.target.memberships([group_sys]) if group_sys else []
    target = replace(
        planned.target,
        users=records,
        memberships={r["sys_id"]: r for r in rows},
        member_groups=frozenset([group_sys] if group_sys else []),
    )
    source = SourceSnapshot(users, groups={group.id: group}, members={group.id: tuple(users)})
    picture = Picture(source, target)
    ids = tuple(users)
    planned = plan_trusted(
        config, ports, lambda t: plan_group(config, picture, links, t, group.id, ids)
    )
    for user in users.values():
        _say_member(user, found[user.id], say)
        items = tuple(i for i in planned.users.plan.items if i.directory_id == user.id)
        held = len(planned.held)
        planned, items = _held(planned, items, USER, ports, say)
        if not items and len(planned.held) == held:
            say("action", nothing_to_do(user.in_scope, user.id in planned.users.links))
        say_plan(items, say)
    say_plan(planned.memberships.plan.items, say, step="membership")
    return planned


def _group_sys_id(planned: CyclePlan, group_id: str) -> str | None:
    """The existing record the group is linked to or adopts (None: it is created now)."""
    for item in planned.groups.plan.items:
        if item.directory_id == group_id and item.adopt and item.sys_id:
            return item.sys_id
    return planned.groups.links.get(group_id)


def _say_member(user: SourceObject, records: Mapping[str, Record], say: Say) -> None:
    """A member's import, scope and match steps, as `provision USER` says them."""
    attributes = user.attributes
    say("user", f"{user.display_name} <{attributes.get('userPrincipalName')}> id {user.id}")
    say("scope", ("in scope: " if user.in_scope else "not in scope: ") + user.scope_reason)
    considered = ", ".join(f"{r.get('user_name')} ({s})" for s, r in records.items())
    say("match", f"ServiceNow records considered: {considered or 'none'}")


def _links_made(planned: CyclePlan, results: tuple[Result, ...]) -> dict[ObjectType, LinkChanges]:
    """Links of the records created or adopted, and of membership rows added, found again
    (snsync's own) or kept (rows that existed before)."""
    users = [r for r in results if r.item.object_type is USER]
    groups = [r for r in results if r.item.object_type is GROUP]
    user_links = {**planned.users.links, **new_links(users)}
    group_links = {**planned.groups.links, **new_links(groups)}
    return {
        USER: LinkChanges(new_links(users)),
        GROUP: LinkChanges(new_links(groups)),
        **membership_links(planned.memberships, results, user_links, group_links),
    }
