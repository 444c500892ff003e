"""Guards between plan and execution (pure): hold every disable when there are too many, disable
nothing when the source or the target was read incompletely, and wait out the back-off of failing
objects."""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from snsync.engine.memberships import MembershipPlan
from snsync.model import Action, Held, PlanItem, Reason, Status

DisableLimit = int | str | None


@dataclass(frozen=True)
class Waiting:
    """An object in back-off: when it may be tried again."""

    object_type: str
    directory_id: str
    failures: int
    next_attempt: float


def limit_for(limit: DisableLimit, linked: int) -> int | None:
    """The number of disables allowed: a count, or a percentage of the linked objects."""
    if limit is None:
        return None
    if isinstance(limit, int):
        return limit
    return math.floor(float(limit.rstrip("%")) / 100.0 * linked)


def hold_disables(
    items: Sequence[PlanItem], limit: DisableLimit, linked: int, allow: bool
) -> tuple[tuple[PlanItem, ...], Held | None]:
    """Above the limit, every disable becomes a StagedDisable (nothing is disabled) unless
    the admin allowed them for this run."""
    allowed = limit_for(limit, linked)
    disables = [i for i in items if i.action is Action.DISABLE and i.writes]
    if allow or allowed is None or len(disables) <= allowed:
        return tuple(items), None
    object_type = disables[0].object_type
    text = f"{limit} ({allowed} of {linked} linked)" if isinstance(limit, str) else str(limit)
    message = (
        f"held: this cycle would disable {len(disables)} {object_type}s, more than "
        f"safety.max_disables allows ({text}); release with `snsync run --once --allow-disables`"
    )
    staged = tuple(
        replace(
            i,
            action=Action.STAGED_DISABLE,
            status=Status.SKIPPED,
            reason=Reason.DISABLE_THRESHOLD,
            message=message,
        )
        if i.action is Action.DISABLE and i.writes
        else i
        for i in items
    )
    return staged, Held(object_type, len(disables), allowed, text)


def hold_for_incomplete_source(
    items: Sequence[PlanItem], incomplete: Sequence[str]
) -> tuple[PlanItem, ...]:
    """A partly read source must never disable anyone or remove a membership."""
    if not incomplete:
        return tuple(items)
    why = "; ".join(incomplete)
    return tuple(
        replace(
            i,
            action=Action.SKIP,
            status=Status.WARNING,
            reason=Reason.SOURCE_INCOMPLETE,
            message=f"not {i.action.value.lower()}d: the directory was not read completely ({why})",
        )
        if i.action in (Action.DISABLE, Action.DELETE) and i.writes
        else i
        for i in items
    )


@dataclass(frozen=True)
class TableRead:
    """How much of one managed ServiceNow table a cycle saw."""

    table: str
    read: int  # records the table answered with
    linked: int  # records snsync has links for
    found: int  # of those, how many came back
    never_empty: bool = False  # sys_user always holds the integration account at least


def incomplete_target(reads: Iterable[TableRead], min_share: float) -> tuple[str, ...]:
    """One line per managed table that came back empty, or with fewer than `min_share` of the
    records snsync has links for (as a real instance can under read rules, or broken)."""
    notes = []
    for r in reads:
        check = (
            f"check the integration account's roles and the read ACLs and before-query business "
            f"rules on {r.table}, and that the instance is not hibernating"
        )
        if r.read == 0 and (r.linked or r.never_empty):
            notes.append(
                f"{r.table} came back empty although snsync has links for {r.linked} of its "
                f"records; {check}"
            )
        elif r.linked and r.found < min_share * r.linked:
            notes.append(
                f"{r.table} returned only {r.found} of the {r.linked} records snsync has links "
                f"for (below safety.target_min_share {min_share:.0%}); {check}"
            )
    return tuple(notes)


def hold_for_incomplete_target(
    items: Sequence[PlanItem], incomplete: Sequence[str], linked: Collection[str]
) -> tuple[PlanItem, ...]:
    """A partly read target must never disable, remove a membership, or create again what
    snsync has a link for: the record is most likely there, only not shown."""
    if not incomplete:
        return tuple(items)
    why = "; ".join(incomplete)

    def held(item: PlanItem) -> bool:
        if not item.writes:
            return False
        if item.action in (Action.DISABLE, Action.DELETE):
            return True
        return item.action is Action.CREATE and item.directory_id in linked

    return tuple(
        replace(
            i,
            action=Action.SKIP,
            status=Status.WARNING,
            reason=Reason.TARGET_INCOMPLETE,
            message=f"not {i.action.value.lower()}d: ServiceNow was not read completely ({why})",
        )
        if held(i)
        else i
        for i in items
    )


def hold_memberships_for_incomplete_target(
    memberships: MembershipPlan, incomplete: Sequence[str], linked: Collection[str]
) -> MembershipPlan:
    """The membership plan under an incomplete target: no removals, no re-creates of linked
    rows, and no link forgotten because its row was not shown."""
    if not incomplete:
        return memberships
    items = hold_for_incomplete_target(memberships.plan.items, incomplete, linked)
    return replace(memberships, plan=replace(memberships.plan, items=items), forgotten=())


def wait_for_backoff(
    items: Sequence[PlanItem], waiting: Iterable[Waiting], now: float | None = None
) -> tuple[PlanItem, ...]:
    """Writes for objects that keep failing wait until their back-off has passed."""
    clock = time.time() if now is None else now
    due = {(w.object_type, w.directory_id): w for w in waiting if w.next_attempt > clock}
    result = []
    for item in items:
        wait = due.get((item.object_type, item.directory_id))
        if wait and item.writes:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(wait.next_attempt))
            item = replace(
                item,
                action=Action.SKIP,
                status=Status.SKIPPED,
                reason=Reason.RETRY_BACKOFF,
                message=f"failed {wait.failures} times; next attempt after {when} "
                "(or now: snsync provision, or snsync reset --retries)",
            )
        result.append(item)
    return tuple(result)
