"""Carry out plan items against ServiceNow with bounded concurrency. One object's failure never
stops the others; every item comes back as a `Result`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from snsync.engine.model import Action, PlanItem, Reason, Result, Status
from snsync.errors import ApiError, TransientError, WriteBlockedError
from snsync.servicenow.client import TableClient
from snsync.stop import STOP

OnResult = Callable[[Result], None]


def execute(
    items: Sequence[PlanItem],
    client: TableClient,
    table: str,
    *,
    concurrency: int = 8,
    dry_run: bool = False,
    on_result: OnResult | None = None,
) -> list[Result]:
    """Execute `items` and return one Result each, in the items' order."""

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
            result = apply_item(item, client, table)
        if on_result:
            on_result(result)
        return result

    if concurrency <= 1 or len(items) <= 1:
        return [run(item) for item in items]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="snsync-exec") as pool:
        return list(pool.map(run, items))


def apply_item(item: PlanItem, client: TableClient, table: str) -> Result:
    """Send the one write a plan item needs; failures become a Failure result."""
    values = {c.field: c.new for c in item.changes}
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
            f"{exc}; it will be tried again next cycle",
        )
    except ApiError as exc:
        return Result(item, Status.FAILURE, item.sys_id, Reason.API_ERROR, str(exc))


def _done(item: PlanItem, sys_id: str | None, record: dict[str, str] | None) -> Result:
    return Result(item, item.status, sys_id, item.reason, item.message, record)


def _dry(item: PlanItem) -> Result:
    status = (
        item.status
        if item.action is not Action.SKIP or item.status is Status.FAILURE
        else Status.SKIPPED
    )
    return Result(item, status, item.sys_id, item.reason, item.message)
