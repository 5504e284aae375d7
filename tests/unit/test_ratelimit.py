"""Sliding-window limits on failures, with a clock we control."""

from __future__ import annotations

from broker.ratelimit import FailureLimiter, SlidingWindowLimiter


def test_allows_the_limit_then_blocks_until_the_oldest_event_leaves_the_window() -> None:
    limiter = SlidingWindowLimiter(limit=3, window=60)
    for t in (0, 10, 20):
        assert limiter.retry_after("a", t) is None
        limiter.record("a", t)
    assert limiter.retry_after("a", 21) == 39  # the event at 0 leaves at 60
    assert limiter.retry_after("a", 60) is None
    assert limiter.retry_after("b", 21) is None


def test_the_window_slides_rather_than_resetting() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    limiter.record("a", 9)
    limiter.record("a", 11)
    # A fixed window [10, 20) would allow another at 12; the sliding one does not.
    assert limiter.retry_after("a", 12) == 7


def test_memory_stays_bounded_under_many_sources() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10, max_keys=100)
    for i in range(1000):
        limiter.record(f"src{i}", float(i) / 1000)
    assert len(limiter._events) <= 100
    assert limiter.retry_after("src999", 0.999) is not None


def test_failure_limiter_blocks_per_source_and_globally_in_whole_seconds() -> None:
    limiter = FailureLimiter.create(per_source=2, overall=3, window=60)
    limiter.record_failure("a", 0.5)
    limiter.record_failure("a", 1.0)
    assert limiter.retry_after("a", 1.0) == 60  # ceil(59.5)
    assert limiter.retry_after("b", 1.0) is None
    limiter.record_failure("b", 2.0)
    assert limiter.retry_after("c", 2.0) is not None  # three failures in all
    assert limiter.retry_after("c", 61.0) is None
