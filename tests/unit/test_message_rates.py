"""Token buckets and message rates, with a clock we control (plain floats)."""

from __future__ import annotations

import pytest

from broker.throttling.ratelimit import BucketsByKey
from protocol.rates import Flow, MessageRate, TokenBucket


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.wait(0.0) == pytest.approx(0.1)
    assert not bucket.take(0.05)
    assert bucket.take(0.1)
    assert not bucket.take(0.1)


def test_a_bucket_fills_up_to_its_burst_and_no_further() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    for _ in range(5):
        bucket.take(0.0)
    assert not bucket.full(0.4)
    assert bucket.full(100.0)
    assert [bucket.take(100.0) for _ in range(6)] == [True] * 5 + [False]


def test_a_clock_read_earlier_never_refills_backwards() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.take(10.0)
    assert not bucket.take(9.0)  # an earlier reading, handed in late
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


def test_taking_several_at_once_and_what_never_fits() -> None:
    bucket = TokenBucket(rate=100, burst=500)
    assert bucket.take(0.0, 500)
    assert not bucket.take(1.0, 200)  # 100 back after a second
    assert bucket.wait(1.0, 200) == pytest.approx(1.0)
    assert bucket.wait(1.0, 501) == float("inf")
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=5)


def test_refusals_are_told_at_most_once_every_few_seconds_however_the_flood_goes() -> None:
    rate = MessageRate.per_second(1, 2)
    flows = [rate.admit(0.0) for _ in range(5)]
    assert flows == [Flow.accepted, Flow.accepted, Flow.refused_tell, Flow.refused, Flow.refused]
    assert rate.admit(1.0) is Flow.accepted  # a token now and then during a flood...
    assert rate.admit(1.0) is Flow.refused  # ...starts no new notice
    assert [rate.admit(5.0) for _ in range(3)] == [Flow.accepted, Flow.accepted, Flow.refused_tell]  # 5 s on
    assert rate.refused_total == 5
    assert "2 messages at once or 1 a second" in rate.describe()


def test_buckets_by_key_are_independent_and_say_how_long_to_wait() -> None:
    buckets = BucketsByKey(rate=10, burst=100)
    assert buckets.take("a", 100, 0.0) is None
    assert buckets.take("a", 50, 0.0) == 5
    assert buckets.take("b", 100, 0.0) is None  # another key, another bucket
    assert buckets.take("a", 50, 5.0) is None
    with pytest.raises(ValueError):
        buckets.take("a", 101, 5.0)


def test_buckets_by_key_forget_full_buckets_first_when_there_are_too_many() -> None:
    buckets = BucketsByKey(rate=1, burst=10, max_keys=3)
    buckets.take("busy", 10, 0.0)
    buckets.take("idle-1", 1, 0.0)
    buckets.take("idle-2", 1, 0.0)
    # At 5 s the idle ones are full again (forgettable); the busy one is not.
    assert buckets.take("new", 1, 5.0) is None
    assert buckets.take("busy", 10, 5.0) == 5  # still remembered: its flood still counts
