"""Word between brokers sharing a real Redis (``broker.cluster.bus``): a broker that takes access away
tells the others to forget their cached peers, hears the same from them, and listens again after its
connection to Redis is cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis import Redis as BlockingRedis
from redis.asyncio import Redis

from broker.cluster.bus import BrokerBus
from broker.settings import Settings
from broker.state import FORGET_PEERS, BrokerState, build_state
from broker.workers import running_workers
from tests.support.polling import async_wait_until
from tests.support.redis_server import RedisServer


@pytest.fixture
async def other(redis_server: RedisServer, state: BrokerState) -> AsyncIterator[BrokerBus]:
    """Another broker's end of the channel (holding the same keys), listening."""
    bus = BrokerBus(Redis.from_url(redis_server.url), BlockingRedis.from_url(redis_server.url), state.keys.bus_key)
    listening = asyncio.create_task(bus.listen())
    await asyncio.wait_for(bus.listening.wait(), 5)
    yield bus
    listening.cancel()


@pytest.fixture
async def state(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[BrokerState]:
    """A broker's state with its workers running (the bus's listener among them)."""
    opened = build_state(Settings(data_dir=tmp_path, redis_url=redis_server.url))
    async with running_workers(opened):
        assert opened.bus is not None
        await asyncio.wait_for(opened.bus.listening.wait(), 5)
        yield opened
    opened.database.dispose()


async def test_access_taken_away_on_one_broker_is_forgotten_by_the_others(state: BrokerState, other: BrokerBus) -> None:
    heard = asyncio.Event()
    other.on(FORGET_PEERS, lambda _told: heard.set())

    def withdraw() -> None:
        with state.database.session() as db:
            state.access_withdrawn(db)

    await asyncio.to_thread(withdraw)
    await asyncio.wait_for(heard.wait(), 2)

    generation = state.peers.generation
    assert await asyncio.to_thread(other.tell, FORGET_PEERS)
    await async_wait_until(lambda: state.peers.generation > generation, "the broker to forget its cached peers",
                           timeout=2)


async def test_a_broker_cut_off_from_redis_listens_again(state: BrokerState, other: BrokerBus,
                                                         redis_server: RedisServer) -> None:
    assert state.bus is not None
    with redis_server.client() as admin:
        admin.client_kill_filter(_type="pubsub")
    await async_wait_until(lambda: state.bus is not None and not state.bus.listening.is_set(),
                           "the broker to notice it was cut off", timeout=5)
    await async_wait_until(lambda: state.bus is not None and state.bus.listening.is_set()
                           and other.listening.is_set(), "both to listen again", timeout=5)
    generation = state.peers.generation
    deadline = asyncio.get_running_loop().time() + 5
    # Told until heard: the first tells may go out before the broker subscribed again.
    while state.peers.generation == generation:
        assert asyncio.get_running_loop().time() < deadline, "the broker never heard the other again"
        await asyncio.to_thread(other.tell, FORGET_PEERS)
        await asyncio.sleep(0.1)
