"""What the row-wise cached picture keeps of a cycle besides the two sides (pure): who is in
scope, the assignments and roles it was computed with, which objects had a plan item (the next
narrowed cycle plans them again), and, for a narrowed cycle, which rows it changed."""

from __future__ import annotations

from collections.abc import Sequence

from snsync.config import Config
from snsync.engine.narrow import narrow_block
from snsync.engine.plan import CyclePlan, make_group_mapper, make_mapper
from snsync.engine.reading import Reading
from snsync.model import Action, CachedPicture, ObjectType, PlanItem, Reason, Result, Status
from snsync.state import PictureChanges, PictureFacts

USER, GROUP, MEMBERSHIP = ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP
# Skips that depend on the object alone (never linked, so no record or link of it can change
# without its own change or a stamp drift, both of which put it in the focus): not planned
# again until the object changes. They are logged when they arise, not every cycle.
STANDING = frozenset({Reason.NOT_ACTIVE, Reason.MISSING_MATCH_VALUE})


def picture_facts(
    config: Config, planned: CyclePlan, reading: Reading, results: Sequence[Result]
) -> PictureFacts:
    """The facts kept beside the picture (of the focus objects only, after a narrowed cycle).
    Pending: every object with a plan item but a write that succeeded (whose answer the picture
    keeps), or a skip that depends on the object alone (`STANDING`): skips, failures, warnings,
    held and waiting writes are planned again next cycle."""
    focus = planned.focus
    users = planned.snapshot.users
    in_scope = [i for i, u in users.items() if u.in_scope and (focus is None or i in focus.users)]
    pending: dict[str, set[str]] = {USER: set(), GROUP: set(), MEMBERSHIP: set()}
    for kind, directory_id in _pending_objects(results):
        if kind is MEMBERSHIP:
            pending[MEMBERSHIP].add(directory_id.split(":", 1)[-1])
        elif kind in (USER, GROUP):
            pending[kind].add(directory_id)
    return PictureFacts(
        in_scope=in_scope,
        assignments=tuple(
            (a.principal_type, a.principal_id, a.app_role_id) for a in reading.assignments
        ),
        roles=dict(reading.roles),
        pending=pending,
        match_fields={
            USER: make_mapper(config.mappings).matching_fields,
            GROUP: make_group_mapper(config).matching_fields,
        },
        narrowable=not planned.target_incomplete and narrow_block(config) is None,
        link_field=config.mappings.link_field,
        listed=reading.listed,
        service_principal=reading.service_principal,
    )


def _pending_objects(results: Sequence[Result]) -> set[tuple[ObjectType, str]]:
    """The objects with a plan item (one result each, in the plan's order) none of whose
    writes succeeded, but for standing skips. Two passes, so that only the few objects left
    pending are held, never a set of every object written."""
    left = {
        (r.item.object_type, r.item.directory_id)
        for r in results
        if not (r.item.writes and r.status is Status.SUCCESS) and not _standing(r.item)
    }
    if left:
        for r in results:
            if r.item.writes and r.status is Status.SUCCESS:
                left.discard((r.item.object_type, r.item.directory_id))
    return left


def _standing(item: PlanItem) -> bool:
    return item.action is Action.SKIP and item.sys_id is None and item.reason in STANDING


def picture_changes(
    planned: CyclePlan, reading: Reading, saved: CachedPicture, results: Sequence[Result]
) -> PictureChanges | None:
    """The rows a narrowed cycle changed (None after a full or whole-picture cycle)."""
    narrowed, focus = reading.narrowing, planned.focus
    if narrowed is None or focus is None:
        return None
    removed = frozenset(
        r.sys_id
        for r in results
        if r.item.object_type is MEMBERSHIP
        and r.item.action is Action.DELETE
        and r.status is Status.SUCCESS
        and r.sys_id
    )
    directory, target = saved.directory, saved.target
    return PictureChanges(
        focus_users=focus.users,
        users=directory.users,
        members=directory.members,
        focus_groups=focus.groups,
        groups=directory.groups,
        dropped_groups=narrowed.dropped_groups,
        unread_groups=narrowed.unread_groups,
        records={USER: target.users, GROUP: target.groups},
        rows=target.memberships,
        removed_rows=removed,
        member_groups=target.member_groups,
        references=target.references,
    )
