"""Rooms across brokers (``broker.cluster.rooms``) on a real Redis, two brokers' ends in one process.

What the process-level tests cannot force at will: a flood relayed to a peer on another broker
that does not read is refused to its sender there too, and the other peer stays; what was addressed
to a connection replaced since never reaches its successor; and whatever else is published on the
brokers' channels or written in a room (not JSON, the wrong shape, too long) is ignored, and the
brokers go on delivering; and a message not signed with the installation's key, or replayed
later, is not acted on (someone with Redis cannot speak for a broker).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis import Redis as BlockingRedis
from redis.asyncio import Redis

from broker.cluster.bus import CHANNEL, BrokerBus, direct_channel
from broker.cluster.room_directory import BEAT_SECONDS, RoomDirectory, room_key
from broker.cluster.rooms import DELIVER, ClusterRooms
from broker.sessions.hub import RELAY_LIMIT, Peer
from protocol.api import HostInfo, UserBrief
from protocol.signalling import IceCandidate, PeerInfo, Role
from tests.support.polling import async_wait_until
from tests.support.redis_server import RedisServer

SESSION = "0f6c6d4e-1f0a-4b4e-9a43-5d2f3f0e9a01"

KEY = bytes(range(32))
"""The installation's bus key (both brokers hold it; Redis does not)."""


def signed(message: dict[str, Any], key: bytes = KEY) -> str:
    """``message`` as a broker holding ``key`` publishes it: its HMAC-SHA256 in hex, then its JSON."""
    body = json.dumps(message)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest() + body


@dataclass
class Link:
    """A connection's far end: what it was sent, and whether it was closed. A stuck one never takes a message."""

    stuck: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed: tuple[int, str | None] | None = None

    async def send_text(self, data: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.sent if message["type"] == kind]


@dataclass
class Broker:
    bus: BrokerBus
    rooms: ClusterRooms


@pytest.fixture
async def brokers(redis_server: RedisServer) -> AsyncIterator[tuple[Broker, Broker]]:
    """Two brokers' ends of the rooms, listening, sending and beating."""
    redis_server.flush()
    made, tasks = [], []
    for _ in range(2):
        client = Redis.from_url(redis_server.url)
        bus = BrokerBus(client, BlockingRedis.from_url(redis_server.url), KEY)
        rooms = ClusterRooms(bus, RoomDirectory(client, bus.broker_id))
        tasks += [asyncio.create_task(work) for work in (bus.listen(), bus.publish_queued(), rooms.keep_presence())]
        made.append(Broker(bus, rooms))
    for broker in made:
        await asyncio.wait_for(broker.bus.listening.wait(), 5)
    yield made[0], made[1]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def host(link: Link) -> Peer:
    info = PeerInfo(role=Role.host, host=HostInfo(machine_name="desk-7", os="Linux", user_name="kim"))
    return Peer(session_id=SESSION, info=info, link=link)


def technician(link: Link) -> Peer:
    info = PeerInfo(role=Role.technician, user=UserBrief(id=1, username="ana", display_name="Ana"))
    return Peer(session_id=SESSION, info=info, link=link)


async def test_a_flood_relayed_to_a_peer_on_another_broker_that_does_not_read_is_refused_to_its_sender(
        brokers: tuple[Broker, Broker]) -> None:
    first, second = brokers
    reading, stuck = Link(), Link(stuck=True)
    sender, receiver = host(reading), technician(stuck)
    await second.rooms.join(receiver)
    await first.rooms.join(sender)
    other = await first.rooms.other(sender)
    assert other is not None and other.info.role is Role.technician
    for n in range(RELAY_LIMIT + 40):
        assert other.relay(IceCandidate(candidate=f"candidate:{n} 1 udp 1 127.0.0.1 9 typ host"))
    await async_wait_until(lambda: len(reading.of_type("error")) >= 30, "the sender to be told its relays were refused",
                           timeout=5)
    refusals = reading.of_type("error")
    assert {e["code"] for e in refusals} == {"peer_busy"}, refusals
    assert "this ice was dropped" in refusals[0]["message"]
    assert stuck.closed is None, "the peer that did not read was kept"


async def test_what_was_addressed_to_a_replaced_connection_does_not_reach_its_successor(
        brokers: tuple[Broker, Broker]) -> None:
    first, second = brokers
    old_link, new_link, tech_link = Link(), Link(), Link()
    old, new = host(old_link), host(new_link)
    await second.rooms.join(old)
    await first.rooms.join(technician(tech_link))
    first.bus.send(second.bus.broker_id, DELIVER, session=SESSION, role="host", conn=old.conn_id,
                   text=json.dumps({"type": "answer", "sdp": "v=0 for the old"}))
    await async_wait_until(lambda: bool(old_link.of_type("answer")), "the old connection to get its answer")
    replaced, _ = await second.rooms.join(new)
    assert replaced == [old]
    for conn, sdp in ((old.conn_id, "v=0 late, for the old"), (new.conn_id, "v=0 for the new")):
        first.bus.send(second.bus.broker_id, DELIVER, session=SESSION, role="host", conn=conn,
                       text=json.dumps({"type": "answer", "sdp": sdp}))
    await async_wait_until(lambda: bool(new_link.of_type("answer")), "the new connection to get its answer")
    assert [m["sdp"] for m in new_link.of_type("answer")] == ["v=0 for the new"]
    assert [m["sdp"] for m in old_link.of_type("answer")] == ["v=0 for the old"]


async def test_garbage_on_the_channels_and_in_a_room_is_ignored_and_delivery_goes_on(
        brokers: tuple[Broker, Broker], redis_server: RedisServer) -> None:
    first, second = brokers
    tech_link, host_link = Link(), Link()
    me = technician(tech_link)
    await second.rooms.join(me)
    await first.rooms.join(host(host_link))
    envelope = {"kind": DELIVER, "from": first.bus.broker_id, "session": SESSION, "role": "technician",
                "conn": me.conn_id, "at": time.time()}
    offer = {**envelope, "text": json.dumps({"type": "offer", "sdp": "v=0 forged"})}
    garbage: list[str | bytes] = [
        b"\xff\xfe not JSON", signed({"kind": 7}), "[1, 2, 3]", signed([1, 2, 3]), "null",  # type: ignore[arg-type]
        signed({**envelope, "role": "admin", "text": "{}"}),
        signed({**envelope, "close_code": 99}),
        signed({**envelope, "text": "x" * (2 * 1024 * 1024)}),
        signed({**envelope, "relayed_by": {"broker": "b", "conn": "c", "role": "nobody"}, "text": "{}"}),
        signed({"kind": "room.closed", "from": "elsewhere", "session": SESSION, "at": time.time()}),
        signed({"kind": "wake.transfers", "from": "elsewhere", "key": ["not", "a", "key"], "at": time.time()}),
        # Well formed, but not from a broker of the installation: unsigned, or signed with another key.
        json.dumps(offer), "0" * 64 + json.dumps(offer), signed(offer, key=bytes(32)),
        # Signed, but sent long ago (a copy replayed from Redis), or with no time at all.
        signed({**offer, "at": time.time() - 120}), signed({key: value for key, value in offer.items() if key != "at"}),
    ]
    with redis_server.client() as raw:
        for data in garbage:
            raw.publish(direct_channel(second.bus.broker_id), data)
            raw.publish(CHANNEL, data)
        # A room holding a record that is not one: no peer there, nothing fails.
        raw.hset(room_key(SESSION), "host", "{not a record")
    assert await second.rooms.other(me) is None
    first.bus.send(second.bus.broker_id, DELIVER, session=SESSION, role="technician", conn=me.conn_id,
                   text=json.dumps({"type": "offer", "sdp": "v=0 still heard"}))
    await async_wait_until(lambda: bool(tech_link.of_type("offer")), "the technician to be delivered to after the garbage")
    assert [m["type"] for m in tech_link.sent] == ["offer"]
    assert tech_link.closed is None and host_link.closed is None


async def test_rooms_emptied_in_redis_are_kept_again_within_a_beat_and_the_peers_reach_each_other(
        brokers: tuple[Broker, Broker], redis_server: RedisServer) -> None:
    """Redis restarted empty (here: FLUSHALL): the brokers put their peers back, and relays flow again."""
    first, second = brokers
    host_link, tech_link = Link(), Link()
    me, partner = host(host_link), technician(tech_link)
    await first.rooms.join(me)
    await second.rooms.join(partner)
    redis_server.flush()
    assert await first.rooms.other(me) is None, "the room is gone from Redis"

    async def found() -> bool:
        return await first.rooms.other(me) is not None and await second.rooms.other(partner) is not None

    deadline = asyncio.get_running_loop().time() + 3 * BEAT_SECONDS + 1
    while not await found():
        assert asyncio.get_running_loop().time() < deadline, "the rooms were not kept again"
        await asyncio.sleep(0.1)
    other = await first.rooms.other(me)
    assert other is not None and other.relay(IceCandidate(candidate="candidate:9 1 udp 1 127.0.0.1 9 typ host"))
    await async_wait_until(lambda: bool(tech_link.of_type("ice")), "the relay to arrive after the rooms came back")
    assert not tech_link.of_type("peer_left") and not host_link.of_type("peer_left"), "nobody was told the other left"
