"""The shared failure windows (``broker.throttling.shared_failures``) against a real Redis: per source and
overall, reserved before the check and forgiven after, sliding on Redis's clock, and the same counts
whether asked from the event loop or from a worker thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis import Redis as BlockingRedis
from redis.asyncio import Redis

from broker.throttling.shared_failures import RefusedByShared, SharedFailureLimiter, SharedFailures
from tests.support.redis_server import RedisServer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    redis_server.flush()
    made = Redis.from_url(redis_server.url)
    yield made
    await made.aclose()


async def test_the_overall_limit_holds_across_sources_and_a_forgiven_attempt_frees_its_place(client: Redis) -> None:
    codes = SharedFailures(client, "codes", per_source=10, overall=3, window_seconds=60)
    first = await codes.reserve("198.51.100.1")
    second = await codes.reserve("198.51.100.2")
    third = await codes.reserve("198.51.100.3")
    assert (first.block_seconds, second.block_seconds, third.block_seconds) == (None, None, 60), \
        "the attempt that fills the overall window says the block it starts"
    with pytest.raises(RefusedByShared) as refused:
        await codes.reserve("198.51.100.4")
    assert 59 <= refused.value.retry_after <= 60
    await codes.forgive(second)  # it was right
    assert (await codes.reserve("198.51.100.4")).block_seconds == 60


async def test_attempts_at_once_get_exactly_the_limit(client: Redis) -> None:
    codes = SharedFailures(client, "codes", per_source=5, overall=None, window_seconds=60)

    async def attempt() -> bool:
        try:
            await codes.reserve("203.0.113.9")
        except RefusedByShared:
            return False
        return True

    assert sum(await asyncio.gather(*(attempt() for _ in range(50)))) == 5


async def test_a_window_slides_on_redis_clock(client: Redis) -> None:
    codes = SharedFailures(client, "codes", per_source=2, overall=None, window_seconds=2)
    await codes.reserve("a")
    await asyncio.sleep(1.0)
    await codes.reserve("a")
    with pytest.raises(RefusedByShared):
        await codes.reserve("a")
    await asyncio.sleep(1.2)  # the first left the window; the second stays in it for 0.8 s more
    await codes.reserve("a")
    with pytest.raises(RefusedByShared):
        await codes.reserve("a")


async def test_a_window_full_of_attempts_being_checked_makes_the_next_wait_and_one_of_judged_failures_refuses(
    client: Redis,
) -> None:
    codes = SharedFailures(client, "codes", per_source=2, overall=None, window_seconds=60)
    checking = [await codes.reserve("nat"), await codes.reserve("nat")]
    waiting = asyncio.create_task(codes.reserve("nat", max_wait=5))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "both attempts may still turn out right: the third waits for them"
    await codes.forgive(checking[0])  # right
    admitted = await asyncio.wait_for(waiting, 1)
    await codes.judged_wrong(checking[1])
    await codes.judged_wrong(admitted)
    asked = time.monotonic()
    with pytest.raises(RefusedByShared) as refused:
        await codes.reserve("nat", max_wait=5)
    assert time.monotonic() - asked < 1, "two judged failures fill the window: refused at once, not after the wait"
    assert 59 <= refused.value.retry_after <= 60


def test_the_blocking_limiter_counts_forgives_and_shares_with_another_broker(redis_server: RedisServer) -> None:
    redis_server.flush()
    with BlockingRedis.from_url(redis_server.url) as one, BlockingRedis.from_url(redis_server.url) as two:
        here = SharedFailureLimiter(one, "sign-ins", per_source=3, overall=None, window_seconds=60)
        there = SharedFailureLimiter(two, "sign-ins", per_source=3, overall=None, window_seconds=60)
        now = time.monotonic()
        assert here.count_attempt("src", now) is None
        assert there.count_attempt("src", now) is None  # the same instant on another broker: its own attempt
        here.forgive("src", now)  # forgives this broker's attempt only
        assert here.retry_after("src", now) is None
        there.record_failure("src", now + 1)
        assert here.count_attempt("src", now + 2) is None  # the third
        wait = there.count_attempt("src", now + 3)
        assert wait is not None and 59 <= wait <= 60
        assert here.retry_after("src", now + 3) == wait
        assert here.retry_after("another", now + 3) is None
