"""The write schedule: every plan item starts as soon as the records it names by placeholder have
been written, instead of waiting for its whole wave to drain.

The plan's waves (engine/plan.py) still say what may depend on what: an item waits only for the
records created or adopted by items of *earlier* waves, exactly the records it would have seen if
the waves ran one after another, so the outcome of every item is the one the waves give (a
placeholder produced in the same or a later wave stays unresolved, as before). What changes is
the order in time: groups are written beside the first users, a report as soon as its manager
exists, a membership as soon as its user and group do. Among the items ready to go, those that
others wait for longest go first (the longest chain of dependents), and each worker takes a
share of what is ready: up to a batch (`servicenow.batch_size`) when much is ready, fewer when
little is, so that no worker holds a long batch while the others have nothing to do."""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from snsync.engine.written import Resolve, Written
from snsync.model import Action, PlanItem, Result, placeholder_of

Run = Callable[[Sequence[PlanItem]], list[Result]]  # sends items (one worker), one Result each


@dataclass(frozen=True)
class Graph:
    """The dependencies between the items of a plan's waves (pure)."""

    items: tuple[PlanItem, ...]  # the waves' items, in the waves' order
    wave: tuple[int, ...]  # the wave of each item
    waits: tuple[tuple[int, ...], ...]  # items of earlier waves each item waits for
    dependents: tuple[tuple[int, ...], ...]  # the items waiting for each item
    height: tuple[int, ...]  # the longest chain of dependents below each item


def named(item: PlanItem) -> list[str]:
    """The placeholders an item's write names (its own record, reference fields)."""
    if not item.pending or not item.writes:
        return []
    names = [item.sys_id] if "sys_id" in item.pending and item.sys_id else []
    return names + [c.new for c in item.changes if c.field in item.pending]


def dependency_graph(waves: Sequence[Sequence[PlanItem]]) -> Graph:
    """Which item waits for which: a placeholder produced by an item of an earlier wave."""
    items = tuple(item for wave in waves for item in wave)
    wave = tuple(k for k, w in enumerate(waves) for _ in w)
    producer: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.action is Action.CREATE or item.adopt:
            producer.setdefault(placeholder_of(item), index)
    waits: list[tuple[int, ...]] = []
    dependents: list[list[int]] = [[] for _ in items]
    for index, item in enumerate(items):
        found = {producer[p] for p in named(item) if p in producer}
        # A tuple, not a frozenset: it lives as long as the cycle's results (engine/written.py)
        # and most are empty (one shared object) or hold one or two items.
        earlier = tuple(sorted(i for i in found if wave[i] < wave[index]))
        waits.append(earlier)
        for i in earlier:
            dependents[i].append(index)
    height = [0] * len(items)
    for index in reversed(range(len(items))):  # dependents come in later waves: already done
        height[index] = max((height[d] + 1 for d in dependents[index]), default=0)
    return Graph(items, wave, tuple(waits), tuple(tuple(d) for d in dependents), tuple(height))


def share(ready: int, workers: int, batch_size: int) -> int:
    """How many ready items one worker takes: an even share, at least 1, at most a batch."""
    return max(1, min(batch_size, math.ceil(ready / max(workers, 1))))


class Scheduler:
    """Runs a dependency graph with `workers` threads; one Result per item, in its order, kept
    compactly (engine/written.py): the sys_ids an item's placeholders stand for are the kept
    results of the items it waited for."""

    def __init__(
        self,
        graph: Graph,
        run: Run,
        *,
        workers: int,
        batch_size: int,
        resolve: Resolve,
        report: Callable[[Result], None],
    ) -> None:
        self.graph = graph
        self.run = run  # sends resolved items, one Result each (and reports them itself)
        self.workers = max(1, workers)
        self.batch_size = max(1, batch_size)
        self.resolve = resolve
        self.report = report  # for the results the scheduler makes itself (not sent)
        self.results = Written(graph.items, graph.waits, resolve)
        self._left = [len(w) for w in graph.waits]
        self._ready: list[tuple[int, int]] = []
        self._open = len(graph.items)  # items without a result yet; -1: a worker failed
        self._cond = threading.Condition()
        for index, left in enumerate(self._left):
            if not left:
                self._push(index)

    def execute(self) -> Written:
        """Every item's Result, in the items' order; a worker's exception is raised here."""
        workers = min(self.workers, max(1, len(self.graph.items)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snsync-exec") as pool:
            for running in [pool.submit(self._work) for _ in range(workers)]:
                running.result()
        return self.results

    def _work(self) -> None:
        while (chunk := self._take()) is not None:
            if not chunk:
                continue
            try:
                sent = self.run([item for _, item in chunk])
            except BaseException:
                with self._cond:
                    self._open = -1  # every worker stops; the caller gets the exception
                    self._cond.notify_all()
                raise
            with self._cond:
                self._done([(i, r) for (i, _), r in zip(chunk, sent, strict=True)])

    def _take(self) -> list[tuple[int, PlanItem]] | None:
        """Ready items for one worker, resolved (maybe none, when every one it took resolved
        to a result of its own); None once every item has its result."""
        with self._cond:
            while self._open > 0 and not self._ready:
                self._cond.wait()
            if self._open <= 0:
                return None
            count = share(len(self._ready), self.workers, self.batch_size)
            chunk: list[tuple[int, PlanItem]] = []
            while self._ready and len(chunk) < count:
                index = heapq.heappop(self._ready)[1]
                resolved = self.resolve(self.graph.items[index], self.results.view(index))
                if isinstance(resolved, Result):
                    self.report(resolved)
                    self._done([(index, resolved)])
                else:
                    chunk.append((index, resolved))
            return chunk

    def _done(self, finished: list[tuple[int, Result]]) -> None:
        """Record results (the lock held); release the items waiting for them."""
        for index, result in finished:
            self.results.put(index, result)
            self._open -= 1
        for index, _ in finished:
            for waiting in self.graph.dependents[index]:
                self._left[waiting] -= 1
                if not self._left[waiting]:
                    self._push(waiting)
        self._cond.notify_all()

    def _push(self, index: int) -> None:
        heapq.heappush(self._ready, (-self.graph.height[index], index))
