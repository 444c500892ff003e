"""Links journaled per write (issue 9.6): each create or adoption ServiceNow confirms is linked in
the state file at once, not at the end of the cycle, so a process killed at any point loses at
most the writes in flight; those are found again by their stamp, or by pair and creator.

The writes answered together (one Batch API request) are journaled together, in one transaction
per object type: a commit costs a disk sync (about 3 ms), and one per write, taken in turn by
every worker, kept ServiceNow's threads waiting about 5% of a first sync. (Items of a refused
batch that are sent again one by one are journaled with the rest of their batch, when the last
of them is answered.)"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from snsync.engine.executor import OnResult
from snsync.engine.ports import StateStore
from snsync.model import Action, ObjectType, Result, Status

JOURNALED = (ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP)


class Journal:
    """An executor callback that links each confirmed create or adoption, then calls `then`;
    `many` does the same for results that came back together."""

    def __init__(self, state: StateStore, then: OnResult | None = None) -> None:
        self.state = state
        self.then = then
        self._lock = threading.Lock()  # the executor reports from its worker threads

    def __call__(self, result: Result) -> None:
        self.many([result])

    def many(self, results: Sequence[Result]) -> None:
        links: dict[ObjectType, dict[str, str]] = {}
        for result in results:
            if result.sys_id and _links(result):
                links.setdefault(result.item.object_type, {})[result.item.directory_id] = (
                    result.sys_id
                )
        if links:
            with self._lock:
                for object_type, found in links.items():
                    self.state.save_links(object_type, found)
        if self.then is not None:
            for result in results:
                self.then(result)


def journaling(state: StateStore, then: OnResult | None = None) -> Journal:
    """The journal of one cycle's writes (see Journal)."""
    return Journal(state, then)


def _links(result: Result) -> bool:
    item = result.item
    return (
        item.object_type in JOURNALED
        and result.status in (Status.SUCCESS, Status.WARNING)
        and (item.action is Action.CREATE or item.adopt)
    )
