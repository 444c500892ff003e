"""Guards between plan and execution (pure): hold every disable when there are too many, disable
nothing when the source was read incompletely, and wait out the back-off of failing objects."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

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
