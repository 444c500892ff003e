"""A queue signal that held no slot of its own (a Graph `$batch` sub-response answered 429 or 503)
halves the limiter and pauses every worker for its Retry-After, as a 429 answer does."""

from __future__ import annotations

from snsync.limiter import AdaptiveLimiter


def test_a_throttled_sub_response_halves_the_limit_and_pauses_everyone() -> None:
    now = [100.0]
    limiter = AdaptiveLimiter("graph", max_concurrency=16, start=8, clock=lambda: now[0])
    limiter.throttled(3.0)
    assert limiter.limit == 4 and limiter.halvings == 1
    assert limiter._paused_until == 103.0
    limiter.throttled(None)  # no Retry-After: halve, no pause added
    assert limiter.limit == 2 and limiter._paused_until == 103.0
    limiter.throttled(10_000.0)  # past the cap: not waited for here (the quota rule decides)
    assert limiter.limit == 1 and limiter._paused_until == 103.0
    assert limiter.in_flight == 0, "a signal takes and returns no slot"
