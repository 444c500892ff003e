"""The Graph limiter's queue signal and budget pacing (snsync.budget, snsync.limiter), with a
fake clock: the share of the budget halves concurrency before a 429, growth comes back when the
share falls, and requests wait for room in the window."""

from __future__ import annotations

import pytest

from snsync.budget import UnitBudget, budget_signal
from snsync.limiter import AdaptiveLimiter

BUSY = {"x-ms-resource-unit": "2", "x-ms-throttle-limit-percentage": "0.90"}
CALM = {"x-ms-resource-unit": "2"}


def limiter(now: list[float]) -> AdaptiveLimiter:
    budget = UnitBudget(10.0, clock=lambda: now[0])
    return AdaptiveLimiter("graph", max_concurrency=8, start=8, clock=lambda: now[0], budget=budget)


def test_the_share_halves_once_for_the_requests_already_sent_and_stops_growth() -> None:
    now = [0.0]
    graph = limiter(now)
    for _ in range(4):
        graph.acquire()
    assert graph.observe(BUSY, 200) is True
    graph.release(0.1, None)
    assert graph.limit == 4 and graph.halvings == 1
    for _ in range(3):  # answers to requests sent before the halving: no further halving
        assert graph.observe(BUSY, 200) is True
        graph.release(0.1, None)
    assert graph.limit == 4 and graph.halvings == 1 and graph.queue_signals == 4
    now[0] += 20  # the window has room again (acquire would wait for it on this fake clock)
    graph.acquire()
    assert graph.observe(BUSY, 200) is True  # sent after the halving and still busy
    graph.release(0.1, None)
    assert graph.limit == 2 and graph.halvings == 2
    for _ in range(20):  # the share fell: Graph leaves the header out, and growth comes back
        now[0] += 20
        graph.acquire()
        assert graph.observe(CALM, 200) is False
        graph.release(0.1, 200)
    assert graph.limit > 2


def test_requests_wait_for_room_in_the_window_and_pacing_ends_when_the_share_falls() -> None:
    now = [0.0]
    budget = UnitBudget(10.0, clock=lambda: now[0])
    assert budget.wait_s(0) == 0.0, "no estimate before Graph says the share"
    signal = budget_signal({"x-ms-resource-unit": "9", "x-ms-throttle-limit-percentage": "0.9"})
    assert signal is not None and signal.busy
    budget.observe(signal)  # 9 units are 90 % of the budget: about 10 per window
    assert budget.estimate == pytest.approx(10.0)
    assert budget.wait_s(0) == pytest.approx(10.0), "room only once the 9 units age out"
    now[0] = 10.5
    assert budget.wait_s(0) == 0.0
    now[0] = 21.0
    calm = budget_signal({"x-ms-resource-unit": "1"})
    assert calm is not None and not calm.busy
    budget.observe(calm)
    assert budget.estimate is None, "a whole window under the share: no pacing"


def test_a_429_leaves_the_estimate_alone_and_an_empty_window_always_takes_a_request() -> None:
    now = [0.0]
    graph = limiter(now)
    for _ in range(3):
        graph.observe(CALM, 200)
    # An injected fault or another limit's 429 says nothing about the budget: its Retry-After
    # pauses every worker instead (test_bounds), no estimate is made of it.
    assert graph.observe({"Retry-After": "2", "x-ms-resource-unit": "1"}, 429) is False
    assert graph.budget is not None and graph.budget.estimate is None
    tiny = budget_signal({"x-ms-resource-unit": "5", "x-ms-throttle-limit-percentage": "1.5"})
    assert tiny is not None
    graph.budget.observe(tiny)  # others spend this app's budget too: little room is left
    assert graph.budget.wait_s(0) > 0
    now[0] = 11.0
    assert graph.budget.wait_s(0) == 0.0, "never stuck: one request a window at least"


@pytest.mark.parametrize(
    ("headers", "units", "share"),
    [
        ({"x-ms-resource-unit": "3", "x-ms-throttle-limit-percentage": "85"}, 3, 0.85),
        ({"X-Ms-Resource-Unit": "1e9", "x-ms-throttle-limit-percentage": "nan"}, 1000, None),
        ({"x-ms-resource-unit": "-4", "x-ms-throttle-limit-percentage": "1e99"}, 0, 2.0),
    ],
)
def test_crafted_budget_headers_are_bounded(
    headers: dict[str, str], units: int, share: float | None
) -> None:
    signal = budget_signal(headers)
    assert signal is not None and signal.units == units and signal.share == share
    assert budget_signal({"Retry-After": "1"}) is None
