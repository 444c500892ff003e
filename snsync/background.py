"""Reads run side by side: each task in a daemon thread, its result or exception kept in a
Future, and waits that a stop (SIGTERM, `schedule.max_cycle_time`, a spent quota) ends at once.

A read in a worker thread cannot be interrupted the way the main thread's can (stop.py): if the
main thread waited for it plainly, a request hanging on a slow socket would hold a stopping
process until its deadline. So the main thread waits in short steps, checks the stop token in
between, and leaves a daemon thread still blocked behind (its answer is thrown away; nothing is
written from a read)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import TypeVar

from snsync.stop import STOP

T = TypeVar("T")
R = TypeVar("R")
STEP_S = 0.2  # how often a waiting main thread looks at the stop token


def start(task: Callable[[], T], name: str) -> Future[T]:
    """Run `task` in a daemon thread named `name`; its outcome in the Future."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(task())
        except BaseException as exc:  # handed to whoever waits for it
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def result(future: Future[T], doing: str) -> T:
    """The task's result (or its exception, raised here); a stop ends the wait at once with
    CycleStopped naming `doing`."""
    while not future.done():
        STOP.check(doing)
        wait([future], timeout=STEP_S)
    return future.result()


def parallel_map(
    task: Callable[[T], R], items: Sequence[T], *, workers: int, doing: str, name: str
) -> list[R]:
    """`task` over `items`, at most `workers` at a time, results in the items' order. After a
    failure no new item starts; the failure is raised once the tasks under way have ended."""
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [task(item) for item in items]
    lock = threading.Lock()
    cursor = iter(enumerate(items))
    outcomes: dict[int, R] = {}
    failed = threading.Event()

    def drain() -> None:
        while not failed.is_set():
            with lock:
                nxt = next(cursor, None)
            if nxt is None:
                return
            index, item = nxt
            try:
                outcomes[index] = task(item)
            except BaseException:
                failed.set()
                raise

    futures = [start(drain, f"{name}-{n}") for n in range(min(workers, len(items)))]
    while True:
        STOP.check(doing)
        _, pending = wait(futures, timeout=STEP_S)
        if not pending:
            break
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [outcomes[i] for i in range(len(items))]
