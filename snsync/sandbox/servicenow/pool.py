"""What limits how much the instance serves: the nodes' REST semaphores with their queues, and
per-hour rate-limit rules.

An instance serves REST from a semaphore pool per node (API_INT: 4 threads per node by default,
a queue of 50 behind it, 429 past the queue; KB0635398, KB0635977, KB0623705). A session sticks to
one node. Rate-limit rules count requests per account per clock hour and put their headers on
every answer under the rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from snsync.sandbox.options import DEFAULT_CONCURRENCY, DEFAULT_QUEUE
from snsync.sandbox.servicenow.failure import Failure, rate_limited

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_NODES", "DEFAULT_QUEUE", "NodePool", "RateLimiter"]

DEFAULT_NODES = 2
QUEUE_FULL_RETRY_AFTER = 1
RULE_ID = "5a3e1b7c0f2d4e6a8b9c1d2e3f4a5b6c"  # the sys_id of the sandbox's rate-limit rule


class NodePool:
    """The nodes' semaphores: each node runs a share of `concurrency` requests at once and queues
    up to `queue` more; past the queue it answers 429. `concurrency=None` means no limit."""

    def __init__(
        self, concurrency: int | None, queue: int | None, nodes: int = DEFAULT_NODES
    ) -> None:
        self.nodes = max(1, min(nodes, concurrency or nodes))
        total = concurrency or 0
        self._threads = [total // self.nodes + (i < total % self.nodes) for i in range(self.nodes)]
        self._limited = concurrency is not None
        self._queue = queue
        self._cond = threading.Condition()
        self._busy = [0] * self.nodes
        self._waiting = [0] * self.nodes
        self._in_flight = 0
        self.peak = 0
        self.latency_s = 0.0

    @contextmanager
    def slot(self, node: int) -> Iterator[None]:
        """Hold one of the node's threads while the request is worked on."""
        node %= self.nodes
        with self._cond:
            self._wait_for_thread(node)
            self._busy[node] += 1
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            yield
        finally:
            with self._cond:
                self._busy[node] -= 1
                self._in_flight -= 1
                self._cond.notify_all()

    def pause(self, seconds: float | None = None) -> None:
        """Spend server time (the configured latency unless told otherwise) holding the slot."""
        wait = self.latency_s if seconds is None else seconds
        if wait > 0:
            time.sleep(wait)

    def _wait_for_thread(self, node: int) -> None:
        if not self._limited or self._busy[node] < self._threads[node]:
            return
        if self._queue is not None and self._waiting[node] >= self._queue:
            raise Failure(
                429,
                "Too Many Requests",
                "The maximum number of queued REST transactions on this node has been reached",
                {"Retry-After": str(QUEUE_FULL_RETRY_AFTER)},
            )
        self._waiting[node] += 1
        try:
            while self._busy[node] >= self._threads[node]:
                self._cond.wait()
        finally:
            self._waiting[node] -= 1


class RateLimiter:
    """Per-account request budget in fixed clock-hour windows (one rule for every account)."""

    def __init__(self, per_hour: int | None, clock: Callable[[], datetime]) -> None:
        self._limit = per_hour
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._used: dict[str, int] = {}

    def take(self, user_name: str) -> bool:
        """Spend one request of the account's budget; False when none is left."""
        if self._limit is None:
            return True
        window = self._window_start()
        with self._lock:
            if window != self._window:
                self._window, self._used = window, {}
            used = self._used.get(user_name, 0)
            if used >= self._limit:
                return False
            self._used[user_name] = used + 1
            return True

    def headers(self) -> dict[str, str]:
        """The headers every answer under the rule carries ({} without a rule)."""
        if self._limit is None:
            return {}
        return {
            "X-RateLimit-Limit": str(self._limit),
            "X-RateLimit-Reset": str(self._window_start() + 3600),
            "X-RateLimit-Rule": RULE_ID,
        }

    def rejection(self, user_name: str) -> Failure:
        """The 429 for an account that has spent its budget in this window."""
        reset = self._window_start() + 3600
        now = int(self._clock().timestamp())
        failure = rate_limited(max(reset - now, 1), reset, self._limit)
        failure.headers.update(self.headers())
        return failure

    def _window_start(self) -> int:
        return int(self._clock().timestamp()) // 3600 * 3600
