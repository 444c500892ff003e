"""snsync/background.py: tasks side by side, results in order, failures raised, and a stop that
ends a wait on a task that hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from snsync import background
from snsync.errors import CycleStopped
from snsync.stop import STOP


@pytest.fixture(autouse=True)
def cleared() -> Iterator[None]:
    STOP.clear()
    yield
    STOP.clear()


def test_parallel_map_keeps_the_items_order_and_runs_them_side_by_side() -> None:
    started = threading.Barrier(3, timeout=5)  # fails unless three run at once

    def task(n: int) -> int:
        if n < 3:
            started.wait()
        return n * n

    assert background.parallel_map(task, list(range(7)), workers=3, doing="x", name="t") == [
        n * n for n in range(7)
    ]


def test_parallel_map_raises_a_task_failure_and_starts_nothing_after_it() -> None:
    ran: list[int] = []

    def task(n: int) -> int:
        ran.append(n)
        if n == 0:
            raise ValueError("first item broken")
        time.sleep(0.05)
        return n

    with pytest.raises(ValueError, match="first item broken"):
        background.parallel_map(task, list(range(50)), workers=2, doing="x", name="t")
    assert 0 in ran and len(ran) <= 3


def test_a_stop_ends_the_wait_for_a_task_that_hangs() -> None:
    release = threading.Event()
    future = background.start(lambda: release.wait(30), "hanging")
    threading.Timer(0.3, STOP.set, args=("SIGTERM",)).start()
    try:
        with pytest.raises(CycleStopped, match=r"stopped \(SIGTERM\) while reading it"):
            background.result(future, "reading it")
    finally:
        release.set()


def test_a_task_exception_is_raised_where_its_result_is_asked_for() -> None:
    def broken() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        background.result(background.start(broken, "broken"), "reading")
