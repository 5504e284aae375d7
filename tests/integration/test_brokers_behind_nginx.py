"""Two brokers behind a real nginx (one data directory, one database, one Redis), reached only through nginx.

nginx hands requests and signalling sockets to the brokers in turn, so a technician and a host
of one session land on different brokers and meet through Redis. When one broker is killed,
nginx skips it: new requests and sockets reach the other, the peers whose sockets were cut are
told apart (``peer_left``) and meet again when they reconnect through nginx.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

import pytest
import websockets

from broker.cluster.room_directory import BEAT_SECONDS, LIVENESS_SECONDS
from tests.support.api import bearer, consented_session
from tests.support.broker import BrokerProcess
from tests.support.database import BrokerDatabases
from tests.support.nginx import BEHIND_PROXY, ProxiedBrokers
from tests.support.redis_server import RedisServer
from tests.support.signalling import receive, receive_type

pytestmark = pytest.mark.both_stacks

SESSIONS = 4
"""Sessions paired through nginx before the kill: 8 sockets, taking turns between the brokers."""
TOLD_WITHIN = LIVENESS_SECONDS + 3 * BEAT_SECONDS
"""How soon after the kill a survivor hears that its partner left (the rooms' liveness, and some beats)."""


@contextmanager
def behind_nginx(broker_db: BrokerDatabases, redis_server: RedisServer, tmp_path: Path) -> Iterator[ProxiedBrokers]:
    env = {**broker_db.env(), **BEHIND_PROXY, "DESKHAND_REDIS_URL": redis_server.url}
    data_dir = tmp_path / "data"
    with (BrokerProcess.start(env, data_dir=data_dir) as first, BrokerProcess.start(env, data_dir=data_dir) as second,
          ProxiedBrokers.start([first, second]) as front):
        yield front


async def connect(front: ProxiedBrokers, session_id: str, token: str) -> websockets.ClientConnection:
    """A signalling socket through nginx, greeted."""
    ws = await websockets.connect(front.ws_url(session_id), additional_headers=bearer(token))
    await receive_type(ws, "welcome")
    return ws


async def relay(sender: websockets.ClientConnection, receiver: websockets.ClientConnection, sdp: str) -> None:
    await sender.send(json.dumps({"type": "offer", "sdp": sdp, "attempt": 1}))
    assert (await receive_type(receiver, "offer"))["sdp"] == sdp


async def closed(ws: websockets.ClientConnection) -> None:
    """Wait until the socket is cut (its broker died and nginx closed our side)."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await receive(ws, timeout=TOLD_WITHIN)


def test_pairs_meet_across_brokers_through_nginx_and_survive_one_being_killed(
        nginx_program: str, broker_db: BrokerDatabases, redis_server: RedisServer, tmp_path: Path) -> None:
    with behind_nginx(broker_db, redis_server, tmp_path) as front:
        # nginx's X-Forwarded-For is believed: the audit trail names the client nginx names.
        failed = front.http.post("/join", json={"code": "000000000", "machine_name": "m", "os": "o", "user_name": "u"},
                                 headers={"X-Forwarded-For": "203.0.113.7"})
        assert failed.status_code in (404, 410), failed.text
        assert front.sql("SELECT source FROM audit_events WHERE kind = 'code.redeem_failed'") == [("203.0.113.7",)]

        admin = bearer(front.login())
        sessions = [consented_session(front, admin, ["view"]) for _ in range(SESSIONS)]
        admin_token = admin["Authorization"].removeprefix("Bearer ")

        async def scenario() -> None:
            async with AsyncExitStack() as sockets:
                pairs = []
                for session_id, host_token in sessions:
                    technician = await connect(front, session_id, admin_token)
                    sockets.push_async_callback(technician.close)
                    host = await connect(front, session_id, host_token)
                    sockets.push_async_callback(host.close)
                    await receive_type(technician, "peer_joined")
                    await relay(host, technician, f"v=0 {session_id}")
                    pairs.append((session_id, host_token, technician, host))

                landed = {ws: front.landed_on(ws.response.headers) for _, _, t, h in pairs for ws in (t, h)}
                assert set(landed.values()) == set(front.brokers), "round robin puts sockets on both brokers"
                split = [pair for pair in pairs if landed[pair[2]] is not landed[pair[3]]]
                assert split, "some pair has its technician on one broker and its host on the other"

                victim = landed[split[0][3]]
                survivor = next(broker for broker in front.brokers if broker is not victim)
                await asyncio.to_thread(victim.kill)

                # Every socket on the victim is cut; its partner on the survivor is told it left.
                cut = [ws for ws, broker in landed.items() if broker is victim]
                await asyncio.gather(*(closed(ws) for ws in cut))
                partners = [(t if landed[h] is victim else h, "host" if landed[h] is victim else "technician")
                            for _, _, t, h in split]
                lefts = await asyncio.gather(*(receive_type(ws, "peer_left", timeout=TOLD_WITHIN) for ws, _ in partners))
                assert [left["role"] for left in lefts] == [role for _, role in partners]

                # New requests: nginx skips the dead broker, every one is answered by the survivor.
                for _ in range(4):
                    me = await asyncio.to_thread(front.http.get, "/auth/me", headers=admin)
                    assert me.status_code == 200, me.text
                    assert front.landed_on(me.headers) is survivor

                # The cut peers reconnect through nginx, meet their partners again and talk.
                for session_id, host_token, technician, host in split:
                    if landed[host] is victim:
                        host = await connect(front, session_id, host_token)
                        sockets.push_async_callback(host.close)
                        assert front.landed_on(host.response.headers) is survivor
                        assert (await receive_type(technician, "peer_joined"))["peer"]["role"] == "host"
                    else:
                        technician = await connect(front, session_id, admin_token)
                        sockets.push_async_callback(technician.close)
                        assert front.landed_on(technician.response.headers) is survivor
                        assert (await receive_type(host, "peer_joined"))["peer"]["role"] == "technician"
                    await relay(host, technician, f"v=0 again {session_id}")

        asyncio.run(scenario())
