"""Plan items written through the Batch API (snsync.servicenow.batch): each item becomes one
WriteRequest asking back only the fields the cycle keeps, and each WriteResult becomes the item's
Result exactly as a single request's outcome would (same statuses, reasons and messages)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from snsync.config import Config
from snsync.engine.plan import make_group_mapper, make_mapper
from snsync.engine.reading import MEMBER_FIELDS, target_fields
from snsync.errors import TransientError
from snsync.model import (
    GROUP_TABLE,
    MEMBER_TABLE,
    USER_TABLE,
    Action,
    PlanItem,
    Reason,
    Result,
    Status,
)
from snsync.servicenow.batch import OnWrite, Stop, WriteKind, WriteRequest, WriteResult

OnResult = Callable[[Result], None]
Finish = Callable[[PlanItem], Result]  # a Result for an item that sends nothing


class Stopping(Protocol):
    """True once snsync is being stopped (the executor's STOP), with the reason."""

    @property
    def reason(self) -> str: ...

    def __bool__(self) -> bool: ...


@dataclass(frozen=True)
class Batching:
    """How the executor batches writes: the batch size, and per table the fields the cycle
    needs back from each write (sys_id always)."""

    size: int = 50
    fields: Mapping[str, Sequence[str]] = field(default_factory=dict)


def batching_for(config: Config) -> Batching:
    """`servicenow.batch_size`, and the fields a cycle reads (and so keeps) of each table:
    a write's answer replaces the record in the cached picture, so it carries the same fields."""
    return Batching(
        config.servicenow.batch_size,
        {
            USER_TABLE: target_fields(make_mapper(config.mappings), "user_name"),
            GROUP_TABLE: target_fields(make_group_mapper(config), "name"),
            MEMBER_TABLE: MEMBER_FIELDS,
        },
    )


@runtime_checkable
class BatchWriter(Protocol):
    """A target that can send many writes at once (ServiceNowTarget)."""

    def write_batch(
        self,
        requests: Sequence[WriteRequest],
        *,
        batch_size: int,
        concurrency: int,
        on_result: OnWrite | None = None,
        stop: Stop | None = None,
    ) -> list[WriteResult]: ...


def execute_batched(
    items: Sequence[PlanItem],
    target: BatchWriter,
    batching: Batching,
    *,
    concurrency: int,
    stop: Stopping,
    finish: Finish,
    on_result: OnResult | None = None,
) -> list[Result]:
    """Execute `items` through `target.write_batch`; one Result each, in the items' order.
    `finish` answers items that send nothing (skips, updates without a change); once `stop`
    is set, batches not yet sent come back skipped."""
    results: list[Result | None] = [None] * len(items)
    sending: list[WriteRequest] = []
    index: dict[int, int] = {}  # id(request) -> position of its item
    for position, item in enumerate(items):
        request = write_request(item, batching.fields)
        if request is None:
            results[position] = _emit(finish(item), on_result)
            continue
        index[id(request)] = position
        sending.append(request)

    def answered(written: WriteResult) -> None:
        position = index[id(written.request)]
        result = item_result(items[position], written, stop.reason)
        results[position] = _emit(result, on_result)

    target.write_batch(
        sending,
        batch_size=batching.size,
        concurrency=concurrency,
        on_result=answered,
        stop=lambda: bool(stop),
    )
    return [r for r in results if r is not None]


def write_request(item: PlanItem, fields: Mapping[str, Sequence[str]]) -> WriteRequest | None:
    """The write `item` needs, or None when it sends nothing."""
    if not item.writes:
        return None
    values = {c.field: c.new for c in item.changes}
    kept = tuple(fields.get(item.table, ()))
    if item.action is Action.CREATE:
        return WriteRequest(WriteKind.CREATE, item.table, values, fields=kept)
    if item.action is Action.DELETE:
        return WriteRequest(WriteKind.DELETE, item.table, sys_id=item.sys_id)
    if not values:
        return None
    return WriteRequest(WriteKind.UPDATE, item.table, values, item.sys_id, kept)


def masked_message(item: PlanItem, message: str) -> str:
    """An answer's message without the Redact() values the write carried (ServiceNow may quote
    them, as in a unique-key violation): for single and batched writes alike."""
    for change in item.changes:
        if change.redacted and len(change.new) >= 3:
            message = message.replace(change.new, change.shown_new)
    return message


def item_result(item: PlanItem, written: WriteResult, stop_reason: str = "") -> Result:
    """A write's outcome as the plan item's Result (the messages of a single request's)."""
    if not written.started:
        return Result(
            item,
            Status.SKIPPED,
            item.sys_id,
            Reason.INTERRUPTED,
            f"not started: snsync was stopped ({stop_reason}); next cycle",
        )
    error = written.error
    if isinstance(error, TransientError):
        message = f"{masked_message(item, str(error))}; it will be tried again next cycle"
        return Result(item, Status.FAILURE, item.sys_id, Reason.TRANSIENT, message)
    if error is not None:
        message = masked_message(item, str(error))
        return Result(item, Status.FAILURE, item.sys_id, Reason.API_ERROR, message)
    # The answer as the writer kept it (sys_id and the fields asked for), not a copy of it.
    return Result(item, item.status, written.sys_id, item.reason, item.message, written.record)


def _emit(result: Result, on_result: OnResult | None) -> Result:
    if on_result:
        on_result(result)
    return result
