"""A service's budget of units per time window, learned from what its answers say: Graph charges
each request resource units (`x-ms-resource-unit`) against a budget per app and tenant per 10 s
and says, past 80 % of it, how much is used (`x-ms-throttle-limit-percentage`). From the units
snsync spent in the window and that share, the budget is estimated (spent / share); requests
then wait until the window has room for them, so the reads stay under the budget instead of
running into 429s. Without a share on the answers of a whole window the estimate is dropped."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

GRAPH_WINDOW_S = 10.0  # Microsoft Learn, throttling limits: identity and access, per 10 s
QUEUE_SHARE = 0.8  # Graph sends the share only above this; at or above it: slow down
TARGET_SHARE = 0.9  # what the pacing aims to spend at most, of the estimated budget
MAX_UNITS = 1000  # a crafted x-ms-resource-unit counts as at most this


@dataclass(frozen=True)
class BudgetSignal:
    """What one answer said about the budget: its cost, and the share in use (None: under
    QUEUE_SHARE, Graph leaves the header out)."""

    units: int | None
    share: float | None

    @property
    def busy(self) -> bool:
        return self.share is not None and self.share >= QUEUE_SHARE


def budget_signal(headers: Mapping[str, str]) -> BudgetSignal | None:
    """The budget headers of an answer, or None when it carries neither."""
    lowered = {k.lower(): v for k, v in headers.items()}
    units = _number(lowered.get("x-ms-resource-unit"))
    share = _number(lowered.get("x-ms-throttle-limit-percentage"))
    if units is None and share is None:
        return None
    if share is not None and share > 2.0:  # a percentage (85) rather than a fraction (0.85)
        share /= 100.0
    return BudgetSignal(
        None if units is None else int(min(max(units, 0.0), MAX_UNITS)),
        None if share is None else min(max(share, 0.0), 2.0),
    )


class UnitBudget:
    """Units spent in the last `window_s` seconds, and the budget they were spent against."""

    def __init__(
        self, window_s: float = GRAPH_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.estimate: float | None = None  # units per window, once an answer said the share
        self._spent: deque[tuple[float, int]] = deque()
        self._expected = 1.0  # the average cost of a request, for the one about to be sent
        self._last_busy = -math.inf
        self._clock = clock
        self._lock = threading.Lock()

    def observe(self, signal: BudgetSignal) -> None:
        """Book an answer's cost and learn from the share it reports."""
        with self._lock:
            now = self._clock()
            if signal.units is not None:
                self._spent.append((now, signal.units))
                self._expected = 0.8 * self._expected + 0.2 * max(signal.units, 1)
            own = self._own(now)
            if signal.busy and own > 0 and signal.share:
                self.estimate = own / signal.share
                self._last_busy = now
            elif self.estimate is not None:
                if now - self._last_busy > self.window_s:
                    self.estimate = None  # a whole window under the share: no pacing needed
                else:
                    self.estimate = max(self.estimate, own / QUEUE_SHARE)  # it is higher

    def wait_s(self, pending: int) -> float:
        """How long the next request should wait for room in the window, with `pending`
        requests already sent and not yet answered (0 when there is room, or no estimate)."""
        with self._lock:
            if self.estimate is None:
                return 0.0
            now = self._clock()
            room = TARGET_SHARE * self.estimate - (pending + 1) * self._expected
            used = self._own(now)
            if used <= room or used == 0:  # an empty window always takes one request
                return 0.0
            for stamp, units in self._spent:  # oldest first: when enough has aged out
                used -= units
                if used <= room:
                    return max(0.0, stamp + self.window_s - now)
            return self.window_s

    def _own(self, now: float) -> int:
        horizon = now - self.window_s
        while self._spent and self._spent[0][0] <= horizon:
            self._spent.popleft()
        return sum(units for _, units in self._spent)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
