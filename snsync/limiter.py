"""One shared, adaptive limiter per service: how many requests may be in flight at once, grown
while latency holds and halved on a 429 or a queue signal (Graph's share of its resource-unit
budget at 80 % or more, `snsync.budget`, which also paces requests to stay within the budget);
a `Retry-After` pauses every worker at once; a spent per-hour quota (X-RateLimit-* headers)
stops the cycle instead of sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from snsync.budget import UnitBudget, budget_signal
from snsync.errors import ExitCode
from snsync.stop import STOP, StopSignal

QUEUE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Quota:
    """A rate-limit rule's state from X-RateLimit-* headers."""

    limit: int | None
    remaining: int | None
    reset: float | None  # epoch seconds, or seconds from now when small
    rule: str

    def seconds_to_reset(self, now: float) -> float | None:
        if self.reset is None:
            return None
        return self.reset - now if self.reset > 1e9 else self.reset


def quota_from_headers(headers: Mapping[str, str]) -> Quota | None:
    """The rate-limit rule an answer was counted under, if it names one."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if not any(k.startswith("x-ratelimit-") for k in lowered):
        return None
    return Quota(
        _int(lowered.get("x-ratelimit-limit")),
        _int(lowered.get("x-ratelimit-remaining")),
        _float(lowered.get("x-ratelimit-reset")),
        lowered.get("x-ratelimit-rule", ""),
    )


class AdaptiveLimiter:
    """Admission for one service's requests, shared by every worker thread."""

    def __init__(
        self,
        service: str,
        *,
        max_concurrency: int,
        start: int | None = None,
        quota_wait_cap_s: float = 120.0,
        stop: StopSignal = STOP,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        budget: UnitBudget | None = None,
    ) -> None:
        self.service = service
        self.max = max(1, max_concurrency)
        self.limit = float(min(self.max, start or max(1, min(4, self.max))))
        self.quota_wait_cap_s = quota_wait_cap_s
        self.in_flight = 0
        self.halvings = 0
        self._paused_until = 0.0
        self._baseline: float | None = None
        self._stop = stop
        self._clock = clock
        self._wall = wall
        self._cond = threading.Condition()
        self.budget = budget  # a learned budget of units per window (Graph), or None
        self.queue_signals = 0  # answers that said the budget is nearly spent
        self._signal_holdoff = 0  # answers to those already sent before the last halving

    def acquire(self) -> None:
        """Wait for a slot (and for any shared pause to end); returns at once when stopping,
        so that the caller's own stop check decides."""
        with self._cond:
            while not self._stop:
                pause = self._paused_until - self._clock()
                if self.budget is not None and pause <= 0:
                    pause = self.budget.wait_s(self.in_flight)
                if pause <= 0 and self.in_flight < int(self.limit):
                    self.in_flight += 1
                    return
                self._cond.wait(timeout=min(0.5, pause) if pause > 0 else 0.5)
            self.in_flight += 1

    def release(
        self, latency_s: float, status: int | None, retry_after_s: float | None = None
    ) -> None:
        """Hand the slot back with what the answer showed."""
        with self._cond:
            self.in_flight = max(0, self.in_flight - 1)
            if status in QUEUE_STATUSES:
                self._back_off(retry_after_s)
            elif status is not None and status < 500:
                self._grow(latency_s)
            self._cond.notify_all()

    def observe(self, headers: Mapping[str, str], status: int | None) -> bool:
        """Learn from an answer's budget headers (before `release`); True when it is a queue
        signal (the budget is 80 % spent or more): concurrency is halved, once for the requests
        sent before the halving, and the caller releases without growth."""
        if self.budget is None or status == 429:
            return False  # a 429 is answered by its Retry-After pause (it may be no budget's)
        signal = budget_signal(headers)
        if signal is None:
            return False
        self.budget.observe(signal)
        if not signal.busy:
            return False
        with self._cond:
            self.queue_signals += 1
            if self._signal_holdoff > 0:
                self._signal_holdoff -= 1
            else:
                self.limit = max(1.0, self.limit / 2)
                self.halvings += 1
                self._signal_holdoff = max(0, self.in_flight - 1)
        return True

    def throttled(self, retry_after_s: float | None) -> None:
        """A queue signal that held no slot of its own (a `$batch` sub-response answered 429 or
        503): halve, and pause every worker for its Retry-After, as `release` does."""
        with self._cond:
            self._back_off(retry_after_s)
            self._cond.notify_all()

    def _back_off(self, retry_after_s: float | None) -> None:
        """Halve, and pause every worker for a Retry-After within the cap (under the lock)."""
        self.limit = max(1.0, self.limit / 2)
        self.halvings += 1
        if retry_after_s and retry_after_s <= self.quota_wait_cap_s:
            self._paused_until = max(self._paused_until, self._clock() + retry_after_s)

    def quota_spent(self, headers: Mapping[str, str], retry_after_s: float | None) -> str | None:
        """Why waiting for this 429 makes no sense (a per-hour quota spent, or a Retry-After
        past the cap), after stopping the cycle; None when a short wait will do."""
        quota = quota_from_headers(headers)
        wait = retry_after_s
        reset = quota.seconds_to_reset(self._wall()) if quota else None
        if reset is not None and ((quota and quota.remaining == 0) or wait is None):
            wait = max(wait or 0.0, reset)
        if wait is None or wait <= self.quota_wait_cap_s:
            return None
        rule = f" (rule {quota.rule})" if quota and quota.rule else ""
        limit = f" of {quota.limit} requests" if quota and quota.limit else ""
        reason = (
            f"{self.service} request quota{limit}{rule} is spent for about {wait / 60:.0f} "
            "min; finished work is recorded, the next cycle goes on"
        )
        self._stop.stop_cycle(reason, ExitCode.QUOTA)
        with self._cond:
            self._cond.notify_all()
        return reason

    def _grow(self, latency_s: float) -> None:
        if self._baseline is None or latency_s < self._baseline:
            self._baseline = latency_s
        holds = latency_s <= 2 * self._baseline + 0.05
        if holds and self.limit < self.max:
            self.limit = min(float(self.max), self.limit + 1 / self.limit)
        elif self._baseline is not None:
            self._baseline *= 1.01  # forget an old best slowly


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
