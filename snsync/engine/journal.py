"""Links journaled per write (issue 9.6): each create or adoption ServiceNow confirms is linked in
the state file at once, not at the end of the cycle, so a process killed at any point loses at
most the writes in flight; those are found again by their stamp, or by pair and creator."""

from __future__ import annotations

import threading

from snsync.engine.executor import OnResult
from snsync.engine.ports import StateStore
from snsync.model import Action, ObjectType, Result, Status

JOURNALED = (ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP)


def journaling(state: StateStore, then: OnResult | None = None) -> OnResult:
    """An executor callback that links each confirmed create or adoption, then calls `then`."""
    lock = threading.Lock()  # the executor reports from its worker threads; one state file

    def record(result: Result) -> None:
        sys_id = result.sys_id
        if sys_id and _links(result):
            with lock:
                state.save_links(result.item.object_type, {result.item.directory_id: sys_id})
        if then is not None:
            then(result)

    return record


def _links(result: Result) -> bool:
    item = result.item
    return (
        item.object_type in JOURNALED
        and result.status in (Status.SUCCESS, Status.WARNING)
        and (item.action is Action.CREATE or item.adopt)
    )
