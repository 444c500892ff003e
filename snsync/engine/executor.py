"""Carry out a plan against ServiceNow: each item as soon as what it references has been written
(engine/schedule.py), with bounded concurrency. Placeholders of records created in earlier waves
are replaced with their new sys_ids before an item is sent. One object's failure never stops
the others; every item comes back as a `Result`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

from snsync.engine.batched import Batching, BatchWriter, execute_batched, masked_message
from snsync.engine.ports import TargetWriter
from snsync.engine.schedule import Scheduler, dependency_graph
from snsync.errors import ApiError, TransientError, WriteBlockedError
from snsync.model import (
    Action,
    ObjectType,
    PlanItem,
    Reason,
    Record,
    Result,
    Status,
)
from snsync.stop import STOP

OnResult = Callable[[Result], None]


@runtime_checkable
class ResultSink(Protocol):
    """An OnResult that also takes the results answered together at once (engine/journal.py)."""

    def __call__(self, result: Result) -> None: ...

    def many(self, results: Sequence[Result]) -> None: ...


def execute_waves(
    waves: Iterable[Sequence[PlanItem]],
    target: TargetWriter,
    *,
    concurrency: int = 8,
    dry_run: bool = False,
    on_result: OnResult | None = None,
    batching: Batching | None = None,
) -> Sequence[Result]:
    """Execute the waves' items, each as soon as the records it names, created or adopted in
    earlier waves, exist (engine/schedule.py); an item sees exactly the records earlier waves
    created, as if the waves ran one after another. With `batching` (and a target that can),
    writes go through the Batch API. A dry run resolves nothing and sends nothing.

    The results come back in the items' order, kept compactly (engine/written.py: `Written`):
    whoever needs them as they come gets them through `on_result`."""
    waves = [tuple(wave) for wave in waves]
    if dry_run:
        items = [item for wave in waves for item in wave]
        return execute(items, target, dry_run=True, on_result=on_result)
    batched = batching is not None and isinstance(target, BatchWriter)

    def run(items: Sequence[PlanItem]) -> list[Result]:
        if not isinstance(on_result, ResultSink):
            return execute(items, target, on_result=on_result, batching=batching)
        # Answered together (one batch): reported together (journaled in one transaction).
        results = execute(items, target, batching=batching)
        on_result.many(results)
        return results

    scheduler = Scheduler(
        dependency_graph(waves),
        run,
        workers=concurrency,
        batch_size=batching.size if batching and batched else 1,
        resolve=resolve,
        report=on_result or (lambda _result: None),
    )
    return scheduler.execute()


def resolve(item: PlanItem, created: Mapping[str, str]) -> PlanItem | Result:
    """The item with its placeholders replaced by the sys_ids of the records created earlier;
    a Skipped result when the record it writes to, or a membership's group or user, is missing.
    A reference field whose record is missing is left out of the write, with a warning."""
    if not item.pending or not item.writes:
        return item
    sys_id = item.sys_id
    if "sys_id" in item.pending:
        sys_id = created.get(sys_id or "")
        if sys_id is None:
            return _not_created(item, "its record")
    changes = []
    missing: list[str] = []
    for change in item.changes:
        if change.field in item.pending:
            new = created.get(change.new)
            if new is None:
                if item.object_type is ObjectType.MEMBERSHIP:
                    return _not_created(item, f"{change.field} '{change.label or change.new}'")
                missing.append(f"{change.field} '{change.label or change.new}'")
                continue
            change = replace(change, new=new)
        changes.append(change)
    if not changes and item.action is Action.UPDATE and not item.adopt:
        return _not_created(item, ", ".join(missing))
    resolved = replace(item, sys_id=sys_id, changes=tuple(changes), pending=frozenset())
    if not missing:
        return resolved
    note = f"{' and '.join(missing)} left out: not created this cycle (next cycle sets it)"
    return replace(
        resolved,
        status=Status.WARNING if resolved.status is Status.SUCCESS else resolved.status,
        reason=resolved.reason or Reason.NOT_CREATED,
        message="; ".join(m for m in (resolved.message, note) if m),
    )


def execute(
    items: Sequence[PlanItem],
    target: TargetWriter,
    *,
    dry_run: bool = False,
    on_result: OnResult | None = None,
    batching: Batching | None = None,
) -> list[Result]:
    """Execute `items` one after another (the scheduler runs several such calls at once) and
    return one Result each, in the items' order; a dry run sends nothing, so it needs no
    threads either."""
    if batching and not dry_run and isinstance(target, BatchWriter):
        return execute_batched(
            items,
            target,
            batching,
            concurrency=1,
            stop=STOP,
            finish=_sends_nothing,
            on_result=on_result,
        )

    def run(item: PlanItem) -> Result:
        if STOP and item.writes:
            result = Result(
                item,
                Status.SKIPPED,
                item.sys_id,
                Reason.INTERRUPTED,
                f"not started: snsync was stopped ({STOP.reason}); next cycle",
            )
        elif dry_run or not item.writes:
            result = _dry(item)
        else:
            result = apply_item(item, target)
        if on_result:
            on_result(result)
        return result

    return [run(item) for item in items]


def apply_item(item: PlanItem, client: TargetWriter) -> Result:
    """Send the one write a plan item needs; failures become a Failure result."""
    values = {c.field: c.new for c in item.changes}
    table = item.table
    try:
        if item.action is Action.CREATE:
            record = client.create(table, values)
            return _done(item, record.get("sys_id"), record)
        assert item.sys_id is not None
        if item.action is Action.DELETE:
            client.delete(table, item.sys_id)
            return _done(item, item.sys_id, None)
        if not values:
            return _done(item, item.sys_id, None)
        record = client.update(table, item.sys_id, values)
        return _done(item, item.sys_id, record)
    except WriteBlockedError:
        raise
    except TransientError as exc:
        return Result(
            item,
            Status.FAILURE,
            item.sys_id,
            Reason.TRANSIENT,
            f"{masked_message(item, str(exc))}; it will be tried again next cycle",
        )
    except ApiError as exc:
        return Result(
            item, Status.FAILURE, item.sys_id, Reason.API_ERROR, masked_message(item, str(exc))
        )


def _sends_nothing(item: PlanItem) -> Result:
    return _dry(item) if not item.writes else _done(item, item.sys_id, None)


def _done(item: PlanItem, sys_id: str | None, record: Record | None) -> Result:
    return Result(item, item.status, sys_id, item.reason, item.message, record)


def _not_created(item: PlanItem, what: str) -> Result:
    return Result(
        item,
        Status.SKIPPED,
        None if "sys_id" in item.pending else item.sys_id,
        Reason.NOT_CREATED,
        f"not written: {what} was not created this cycle; the next cycle tries again",
    )


def _dry(item: PlanItem) -> Result:
    status = (
        item.status
        if item.action is not Action.SKIP or item.status is Status.FAILURE
        else Status.SKIPPED
    )
    return Result(item, status, item.sys_id, item.reason, item.message)
