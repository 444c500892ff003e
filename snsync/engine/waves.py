"""Execution waves for users (pure): a manager is created in a wave before the people reporting
to them, so each report's create already names the manager, through a placeholder the executor
replaces with the manager's new sys_id. A reporting loop (A manages B manages A) cannot be
ordered: its last link becomes a follow-up update in a final wave."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from snsync.model import Action, Change, Changes, ObjectType, PlanItem, placeholder

Wave = tuple[PlanItem, ...]
USER = ObjectType.USER


def user_waves(
    items: Sequence[PlanItem], placeholders: Mapping[str, str] | None = None
) -> list[Wave]:
    """The user items in waves, their manager fields filled in (sys_id or placeholder;
    `placeholders`: those already made for the users created, by directory id, so that every
    report names its manager with the same string)."""
    made = _Managers(placeholders or {})
    # A matched (adopted) manager's record is known before it is written: reports point at it.
    matched = {i.directory_id: i.sys_id for i in items if i.adopt and i.sys_id}
    creating = {i.directory_id for i in items if i.action is Action.CREATE and i.writes}
    waves = execution_waves(items)
    result: list[Wave] = []
    followups: list[PlanItem] = []
    earlier: set[str] = set()  # created in a wave before this one
    for k, wave in enumerate(waves):
        if k:
            earlier |= {i.directory_id for i in waves[k - 1] if i.directory_id in creating}
        done: list[PlanItem] = []
        for item in wave:
            resolved, later = _fill_managers(item, matched, earlier, creating, made)
            done.append(resolved)
            followups += later
        result.append(tuple(done))
    if followups:
        result.append(tuple(followups))
    return result


def _fill_managers(
    item: PlanItem,
    matched: Mapping[str, str],
    earlier: set[str],
    creating: set[str],
    made: _Managers,
) -> tuple[PlanItem, list[PlanItem]]:
    """The item with its deferred fields set, and a follow-up for a field that must wait."""
    if not item.deferred:
        return item, []
    old = None if item.action is Action.CREATE else ""
    added: list[Change] = []
    pending: set[str] = set()
    later: dict[str, str] = {}
    for name, manager in sorted(item.deferred.items()):
        if manager in matched:
            added.append(made.change(name, old, matched[manager]))
        elif manager in earlier:
            added.append(made.change(name, old, made.placeholder(manager)))
            pending.add(name)
        elif manager in creating:
            later[name] = manager
        # else: the manager gets no record this cycle; the field stays empty, as planned.
    changes = item.changes
    more = changes.plus(added) if isinstance(changes, Changes) else (*changes, *added)
    filled = replace(item, changes=more, deferred={}, pending=item.pending | pending)
    return filled, _followup(item, later)


class _Managers:
    """The manager values of the reports' writes: one placeholder string per manager created
    (those the plan made already), and one Change per field and value, shared by all the
    manager's reports."""

    def __init__(self, placeholders: Mapping[str, str]) -> None:
        self._placeholders = placeholders
        self._changes: dict[tuple[str, str | None, str], Change] = {}

    def placeholder(self, manager: str) -> str:
        return self._placeholders.get(manager) or placeholder(USER, manager)

    def change(self, name: str, old: str | None, value: str) -> Change:
        found = self._changes.get((name, old, value))
        if found is None:
            found = self._changes[(name, old, value)] = Change(name, old, value)
        return found


def _followup(item: PlanItem, later: Mapping[str, str]) -> list[PlanItem]:
    """An update setting fields whose record is created in the same or a later wave."""
    if not later or not item.writes:
        return []
    own = item.sys_id
    pending = set(later)
    if item.action is Action.CREATE:
        own = placeholder(ObjectType.USER, item.directory_id)
        pending.add("sys_id")
    changes = tuple(
        Change(name, "", placeholder(ObjectType.USER, manager))
        for name, manager in sorted(later.items())
    )
    return [
        PlanItem(
            Action.UPDATE,
            item.directory_id,
            item.display_name,
            own,
            changes,
            message="manager set after both records exist (a reporting loop)",
            pending=frozenset(pending),
        )
    ]


def execution_waves(items: Sequence[PlanItem]) -> list[list[PlanItem]]:
    """Order items so a manager is created before the people reporting to them: wave k holds
    items whose deferred manager is created in wave k-1. One pass then sets every manager at
    create time instead of a second write per user."""
    creating = {i.directory_id: i for i in items if i.action is Action.CREATE and i.writes}
    depths: dict[str, int] = {}
    waves: dict[int, list[PlanItem]] = {}
    for item in items:
        waves.setdefault(_depth(item, creating, depths, frozenset()), []).append(item)
    return [waves[k] for k in sorted(waves)]


def _depth(
    item: PlanItem, creating: Mapping[str, PlanItem], depths: dict[str, int], path: frozenset[str]
) -> int:
    """The item's wave: one after its deepest manager created this cycle. (A plain function,
    not a closure calling itself: that closure would be a reference cycle holding every item
    until the collector runs, and the cycle freezes the collector's view after planning.)"""
    if item.directory_id in depths:
        return depths[item.directory_id]
    parents = [creating[m] for m in item.deferred.values() if m in creating]
    # A reporting loop (A manages B manages A) cannot be ordered: the second pass sets it.
    found = [
        _depth(p, creating, depths, path | {item.directory_id}) + 1
        for p in parents
        if p.directory_id not in path
    ]
    depths[item.directory_id] = max(found, default=0)
    return depths[item.directory_id]
