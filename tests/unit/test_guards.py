"""Guards, back-off and quarantine schedules (pure)."""

from __future__ import annotations

import pytest

from snsync.config import QuarantineConfig
from snsync.engine.guards import (
    Waiting,
    hold_disables,
    hold_for_incomplete_source,
    limit_for,
    wait_for_backoff,
)
from snsync.engine.supervisor import next_quarantine, quarantine_reason
from snsync.model import Action, Change, PlanItem, Reason, Status
from snsync.state import backoff_seconds

H = 3600


def disable(uid: str) -> PlanItem:
    return PlanItem(Action.DISABLE, uid, uid, "s" * 32, (Change("active", "true", "false"),))


def update(uid: str) -> PlanItem:
    return PlanItem(Action.UPDATE, uid, uid, "s" * 32, (Change("title", "a", "b"),))


@pytest.mark.parametrize(
    ("limit", "linked", "allowed"),
    [(None, 100, None), (5, 100, 5), ("5%", 100, 5), ("5%", 15, 0), ("12.5%", 80, 10)],
)
def test_limit_for(limit: int | str | None, linked: int, allowed: int | None) -> None:
    assert limit_for(limit, linked) == allowed


def test_over_the_limit_every_disable_is_staged_and_updates_go_on() -> None:
    items = [disable("a"), disable("b"), update("c")]
    staged, held = hold_disables(items, 1, 10, allow=False)
    assert held is not None and held.count == 2
    assert [i.action for i in staged] == [
        Action.STAGED_DISABLE,
        Action.STAGED_DISABLE,
        Action.UPDATE,
    ]
    assert all(not i.writes for i in staged[:2]) and staged[2].writes
    assert staged[0].reason == Reason.DISABLE_THRESHOLD


def test_at_the_limit_or_allowed_nothing_is_held() -> None:
    assert hold_disables([disable("a")], 1, 10, allow=False)[1] is None
    assert hold_disables([disable("a"), disable("b")], 1, 10, allow=True)[1] is None


def test_incomplete_source_disables_nothing() -> None:
    items = hold_for_incomplete_source([disable("a"), update("b")], ["users: stopped"])
    assert items[0].action is Action.SKIP and items[0].status is Status.WARNING
    assert items[0].reason == Reason.SOURCE_INCOMPLETE and items[1].writes


def test_backoff_waits_only_while_due() -> None:
    waiting = [Waiting("user", "a", 2, next_attempt=1000.0)]
    assert wait_for_backoff([update("a")], waiting, now=999.0)[0].reason == Reason.RETRY_BACKOFF
    assert wait_for_backoff([update("a")], waiting, now=1001.0)[0].writes


@pytest.mark.parametrize(
    ("failures", "wait"), [(1, 0), (2, 6 * H), (3, 12 * H), (4, 24 * H), (9, 24 * H)]
)
def test_retry_backoff_schedule(failures: int, wait: int) -> None:
    assert backoff_seconds(failures, [6 * H, 12 * H, 24 * H]) == wait


def test_quarantine_ratio_needs_the_minimum_count() -> None:
    config = QuarantineConfig(min_writes=10, failure_ratio=0.4)
    assert quarantine_reason(9, 9, config) is None
    assert quarantine_reason(10, 4, config) is None
    assert "5 of 10 writes failed" in (quarantine_reason(10, 5, config) or "")


def test_quarantine_levels_back_off_then_stop_after_four_weeks() -> None:
    config = QuarantineConfig()
    first = next_quarantine(None, "x", 0.0, config)
    assert (first.level, first.until) == (1, 6 * H)
    second = next_quarantine(first, "x", 6 * H, config)
    assert (second.level, second.until) == (2, 18 * H)
    fourth = next_quarantine(next_quarantine(second, "x", 18 * H, config), "x", 42 * H, config)
    assert fourth.until == 66 * H
    stopped = next_quarantine(fourth, "x", 29 * 24 * H, config)
    assert stopped.stopped
