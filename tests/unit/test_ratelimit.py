"""Sliding-window limits on failures, with a clock we control (plain floats)."""

from __future__ import annotations

import pytest

from broker.throttling.ratelimit import GLOBAL, FailureLimiter, SlidingWindowLimiter


def test_allows_exactly_the_limit_then_blocks_until_the_oldest_event_leaves_the_window() -> None:
    limiter = SlidingWindowLimiter(limit=3, window=60)
    for t in (0, 10, 20):
        assert limiter.retry_after("a", t) is None
        limiter.record("a", t)
    assert limiter.retry_after("a", 20) == 40
    assert limiter.retry_after("a", 21) == 39  # the event at 0 leaves at 60
    assert limiter.retry_after("a", 59.5) == 0.5
    assert limiter.retry_after("a", 60) is None
    assert limiter.retry_after("b", 21) is None  # keys are independent


def test_the_window_slides_rather_than_resetting() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    limiter.record("a", 9)
    limiter.record("a", 11)
    # A fixed window [10, 20) would allow another at 12; the sliding one does not.
    assert limiter.retry_after("a", 12) == 7
    assert limiter.retry_after("a", 19) is None  # the event at 9 left, the one at 11 stays
    limiter.record("a", 19)
    assert limiter.retry_after("a", 19) == 2  # now the event at 11 is the oldest


def test_recording_while_blocked_extends_nothing_beyond_the_window() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10)
    limiter.record("a", 0)
    limiter.record("a", 5)
    assert limiter.retry_after("a", 5) == 5
    assert limiter.retry_after("a", 10) == 5  # the event at 5 is now the one in the way
    assert limiter.retry_after("a", 15) is None


def test_forget_takes_back_one_event() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    limiter.record("a", 1)
    limiter.record("a", 2)
    assert limiter.retry_after("a", 2) is not None
    limiter.forget("a", 2)
    assert limiter.retry_after("a", 2) is None
    limiter.forget("a", 2)  # already gone: harmless
    limiter.forget("nobody", 2)
    limiter.forget("a", 1)
    assert "a" not in limiter._events  # an emptied key takes no memory


def test_idle_keys_are_pruned_first_when_the_key_limit_is_reached() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10, max_keys=3)
    limiter.record("idle", 0)
    limiter.record("busy1", 5)
    limiter.record("busy2", 6)
    limiter.record("new", 12)  # "idle"'s event left the window at 10
    assert set(limiter._events) == {"busy1", "busy2", "new"}
    assert limiter.retry_after("busy1", 12) == 3  # an active key kept its events


def test_the_oldest_key_goes_when_every_key_is_active() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=100, max_keys=3)
    for i, key in enumerate(("k0", "k1", "k2", "k3")):
        limiter.record(key, float(i))
    assert set(limiter._events) == {"k1", "k2", "k3"}


def test_memory_stays_bounded_under_many_sources() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10, max_keys=100)
    for i in range(1000):
        limiter.record(f"src{i}", i / 1000)
    assert len(limiter._events) <= 100
    assert limiter.retry_after("src999", 0.999) is not None


def test_failure_limiter_blocks_per_source_in_whole_seconds() -> None:
    limiter = FailureLimiter.create(per_source=2, overall=100, window=60)
    limiter.record_failure("a", 0.5)
    assert limiter.retry_after("a", 0.5) is None
    limiter.record_failure("a", 1.0)
    assert limiter.retry_after("a", 1.0) == 60  # ceil(59.5): Retry-After is whole seconds
    assert limiter.retry_after("a", 60.4) == 1  # 0.1 s left still says 1, never 0
    assert limiter.retry_after("a", 60.5) is None
    assert limiter.retry_after("b", 1.0) is None


def test_failure_limiter_blocks_everyone_at_the_global_limit() -> None:
    limiter = FailureLimiter.create(per_source=10, overall=3, window=60)
    for source, t in (("a", 0.0), ("b", 1.0), ("c", 2.0)):
        limiter.record_failure(source, t)
    assert limiter.retry_after("fresh", 2.0) == 58  # never failed itself, blocked all the same
    assert limiter.overall.retry_after(GLOBAL, 2.0) == 58
    assert limiter.retry_after("fresh", 60.0) is None


def test_the_longer_of_the_two_waits_wins() -> None:
    limiter = FailureLimiter.create(per_source=1, overall=2, window=60)
    limiter.record_failure("a", 0.0)
    limiter.record_failure("b", 30.0)
    assert limiter.retry_after("b", 30.0) == 60  # per source: until 90; global: until 60


def test_forgive_takes_back_a_failure_from_both_limits() -> None:
    limiter = FailureLimiter.create(per_source=1, overall=1, window=60)
    limiter.record_failure("a", 5.0)
    assert limiter.retry_after("a", 5.0) == 60 and limiter.retry_after("b", 5.0) == 60
    limiter.forgive("a", 5.0)
    assert limiter.retry_after("a", 5.0) is None and limiter.retry_after("b", 5.0) is None


@pytest.mark.parametrize("limit", [1, 5])
def test_reserving_before_checking_lets_exactly_the_limit_through(limit: int) -> None:
    """What signing in does (count first, so concurrent attempts see each other; joins use AttemptGate)."""
    limiter = FailureLimiter.create(per_source=limit, overall=1000, window=60)
    admitted = 0
    for _ in range(limit * 3):  # all at the same instant, none finished yet
        if limiter.retry_after("a", 0.0) is None:
            limiter.record_failure("a", 0.0)
            admitted += 1
    assert admitted == limit
