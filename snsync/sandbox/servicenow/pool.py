"""What limits how much the instance serves: the API semaphore and per-hour rate-limit rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from snsync.sandbox.servicenow.failure import Failure, rate_limited


class Gate:
    """The node's API semaphore: at most N requests work at once, the rest queue."""

    def __init__(self, max_concurrent: int | None) -> None:
        self._slots = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak = 0
        self.latency_s = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._slots is not None:
            self._slots.acquire()
        with self._lock:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
            if self._slots is not None:
                self._slots.release()

    def pause(self) -> None:
        if self.latency_s > 0:
            time.sleep(self.latency_s)


class RateLimiter:
    """Per-account request budget in fixed clock-hour windows."""

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

    def rejection(self, user_name: str) -> Failure:
        """The 429 for an account that has spent its budget in this window."""
        reset = self._window_start() + 3600
        now = int(self._clock().timestamp())
        return rate_limited(max(reset - now, 1), reset, self._limit)

    def _window_start(self) -> int:
        return int(self._clock().timestamp()) // 3600 * 3600
