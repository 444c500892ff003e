"""Graph's identity-and-access throttling: a budget of resource units per app and tenant over a
sliding window, what each request costs, and the headers Graph sends about it."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

from snsync.sandbox.graph.catalog import DELTA_SEGMENTS
from snsync.sandbox.graph.wire import Call, GraphError

# Above this share of the budget Graph adds x-ms-throttle-limit-percentage (Microsoft Learn).
_WARN_SHARE = 0.8


def resource_units(call: Call) -> int:
    """What one request costs (Microsoft Learn, throttling-limits, identity and access)."""
    if call.method != "GET":
        return 1
    segments = [s.lower() for s in call.segments]
    if {"transitivemembers", "transitivememberof"} & set(segments):
        cost = 5
    elif {"members", "memberof"} & set(segments):
        cost = 3
    elif len(segments) == 1 or segments[-1] in DELTA_SEGMENTS:
        cost = 2  # a collection page: users, groups, servicePrincipals, delta
    else:
        cost = 1
    if "$select" in call.query:
        cost -= 1
    if "$expand" in call.query:
        cost += 1
    return max(cost, 1)


class ResourceBudget:
    """Resource units spent by each app in this tenant over the last `window_s` seconds."""

    def __init__(
        self, units: int, window_s: float, tenant_id: str, clock: Callable[[], float]
    ) -> None:
        self._units = units
        self._window_s = window_s
        self._tenant_id = tenant_id
        self._clock = clock
        self._spent: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        self.refused = 0  # requests answered 429 because the budget could not pay them

    def check(self, call: Call) -> int:
        """The call's cost; raises 429 (with Retry-After) when the app's budget cannot pay it."""
        cost = resource_units(call)
        app = call.principal.client_id
        with self._lock:
            spent = self._current(app)
            used = sum(units for _, units in spent)
            if used + cost <= self._units:
                return cost
            retry_after = self._wait(spent, used, cost)
            self.refused += 1
        raise GraphError(
            429,
            "TooManyRequests",
            "Too many requests. Please retry after the time given in the Retry-After header.",
            {
                "Retry-After": str(retry_after),
                "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{app}/{self._tenant_id}",
            },
        )

    def charge(self, call: Call, cost: int) -> dict[str, str]:
        """Book a served call's cost; the headers its answer carries."""
        app = call.principal.client_id
        with self._lock:
            spent = self._current(app)
            spent.append((self._clock(), cost))
            share = sum(units for _, units in spent) / self._units
        headers = {"x-ms-resource-unit": str(cost)}
        if share > _WARN_SHARE:
            headers["x-ms-throttle-limit-percentage"] = f"{share:.2f}"
        return headers

    def _current(self, app: str) -> deque[tuple[float, int]]:
        spent = self._spent.setdefault(app, deque())
        horizon = self._clock() - self._window_s
        while spent and spent[0][0] <= horizon:
            spent.popleft()
        return spent

    def _wait(self, spent: deque[tuple[float, int]], used: int, cost: int) -> int:
        """Whole seconds until enough of the window's spending has aged out to pay `cost`."""
        now = self._clock()
        for stamp, units in spent:
            used -= units
            if used + cost <= self._units:
                return max(1, math.ceil(stamp + self._window_s - now))
        return max(1, math.ceil(self._window_s))
