"""A host on one broker and a technician on another, the brokers sharing a database and a Redis.

They meet as on one broker: each learns the other is there, what one relays the other gets in the
order it was sent, the host's consent reaches the technician, a newer connection on the other
broker replaces the first, a transfer offered through one broker is announced to the peer on the
other and wakes its long poll there, and a peer whose broker is killed is told to its partner,
who meets it again when it reconnects to the broker left.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import websockets

from broker.cluster.room_directory import BEAT_SECONDS, LIVENESS_SECONDS
from protocol.transfers import TransferOut, transfer_version
from tests.support.api import bearer, consented_session
from tests.support.broker import BrokerProcess
from tests.support.redis_server import RedisServer
from tests.support.signalling import peer, receive, receive_type

CANDIDATES = 60
"""ICE candidates the host relays in a burst (within the default signalling rate's burst)."""


@contextmanager
def two_brokers(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[BrokerProcess, BrokerProcess]]:
    env = {"DESKHAND_REDIS_URL": redis_server.url, "DESKHAND_SIGNAL_MESSAGE_BURST": str(2 * CANDIDATES)}
    data_dir = tmp_path / "data"
    with BrokerProcess.start(env, data_dir=data_dir) as first, BrokerProcess.start(env, data_dir=data_dir) as second:
        yield first, second


def candidate(n: int) -> str:
    return json.dumps({"type": "ice", "candidate": f"candidate:{n} 1 udp 1 127.0.0.1 {9000 + n} typ host"})


def test_a_host_on_one_broker_and_a_technician_on_the_other_meet_talk_and_part(redis_server: RedisServer,
                                                                                tmp_path: Path) -> None:
    with two_brokers(redis_server, tmp_path) as (first, second):
        token = first.login()
        session_id, host_token = consented_session(first, bearer(token), ["view", "files.send"])

        async def talk() -> None:
            async with peer(second, session_id, token) as technician:
                welcome = await receive_type(technician, "welcome")
                assert welcome["peer"] is None
                async with peer(first, session_id, host_token) as host:
                    greeted = await receive_type(host, "welcome")
                    assert greeted["peer"]["role"] == "technician"
                    assert greeted["peer"]["user"]["username"] == "admin"
                    joined = await receive_type(technician, "peer_joined")
                    assert joined["peer"]["role"] == "host"

                    await host.send(json.dumps({"type": "offer", "sdp": "v=0 offer", "attempt": 1}))
                    assert (await receive_type(technician, "offer"))["sdp"] == "v=0 offer"
                    await technician.send(json.dumps({"type": "answer", "sdp": "v=0 answer", "attempt": 1}))
                    assert (await receive_type(host, "answer"))["sdp"] == "v=0 answer"
                    for n in range(CANDIDATES):
                        await host.send(candidate(n))
                    heard = [(await receive_type(technician, "ice"))["candidate"] for _ in range(CANDIDATES)]
                    assert heard == [json.loads(candidate(n))["candidate"] for n in range(CANDIDATES)], "in order"

                    await host.send(json.dumps({"type": "consent", "permissions": ["view", "files.send"],
                                                "source": "window"}))
                    assert (await receive_type(technician, "consent"))["permissions"] == ["view", "files.send"]

                    # Offered through the host's broker: the technician hears of it on the other.
                    offered = first.http.post(f"/sessions/{session_id}/transfers", headers=bearer(token),
                                              json={"name": "setup.exe", "size": 3, "direction": "to_host"})
                    assert offered.status_code == 201, offered.text
                    for ws in (technician, host):
                        assert (await receive_type(ws, "transfer"))["transfer"]["id"] == offered.json()["id"]
                left = await receive_type(technician, "peer_left")
                assert left["role"] == "host"

        asyncio.run(talk())


def test_a_long_poll_on_one_broker_wakes_for_a_change_made_through_the_other(redis_server: RedisServer,
                                                                               tmp_path: Path) -> None:
    with two_brokers(redis_server, tmp_path) as (first, second):
        admin = bearer(first.login())
        session_id, host_token = consented_session(first, admin, ["view", "files.send"])
        offered = first.http.post(f"/sessions/{session_id}/transfers", headers=admin,
                                  json={"name": "setup.exe", "size": 3, "direction": "to_host"})
        assert offered.status_code == 201, offered.text
        transfer = offered.json()
        known = second.http.get(f"/sessions/{session_id}/transfers/{transfer['id']}", headers=admin).json()

        async def poll_then_decide() -> tuple[dict[str, object], float]:
            started = time.monotonic()
            polling = asyncio.create_task(asyncio.to_thread(
                second.http.get, f"/sessions/{session_id}/transfers/{transfer['id']}", headers=admin,
                params={"wait": 20, "known": _version(known)}))
            await asyncio.sleep(0.5)  # the poll is waiting on the second broker
            refused = await asyncio.to_thread(
                first.http.post, f"/sessions/{session_id}/transfers/{transfer['id']}/decision",
                headers=bearer(host_token), json={"accept": False, "reason": "not now"})
            assert refused.status_code == 200, refused.text
            answer = await polling
            return answer.json(), time.monotonic() - started

        changed, took = asyncio.run(poll_then_decide())
        assert changed["state"] == "refused", changed
        assert took < 5, f"the poll waited {took:.1f} s: it was not woken by the other broker"


def _version(transfer: dict[str, object]) -> str:
    """The version the long poll compares."""
    return transfer_version(TransferOut.model_validate(transfer))


def test_a_newer_connection_on_the_other_broker_replaces_the_first(redis_server: RedisServer, tmp_path: Path) -> None:
    with two_brokers(redis_server, tmp_path) as (first, second):
        token = first.login()
        session_id, host_token = consented_session(first, bearer(token), ["view"])

        async def replace() -> None:
            async with peer(second, session_id, token) as technician, peer(first, session_id, host_token) as stale:
                await receive_type(stale, "welcome")
                await receive_type(technician, "peer_joined")
                async with peer(second, session_id, host_token) as fresh:
                    assert (await receive_type(fresh, "welcome"))["peer"]["role"] == "technician"
                    ended = await receive_type(stale, "session_ended")
                    assert ended["reason"] == "replaced by a newer connection"
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        while True:
                            await receive(stale)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
                    assert (await receive_type(technician, "peer_joined"))["peer"]["role"] == "host"
                    await technician.send(json.dumps({"type": "answer", "sdp": "v=0 to the fresh one"}))
                    assert (await receive_type(fresh, "answer"))["sdp"] == "v=0 to the fresh one"
                    # The stale connection's going is not the host's leaving.
                    with pytest.raises(TimeoutError):
                        await receive_type(technician, "peer_left", timeout=1)

        asyncio.run(replace())


def test_a_peer_whose_broker_is_killed_is_told_to_its_partner_and_meets_it_again_on_the_other(
        redis_server: RedisServer, tmp_path: Path) -> None:
    with two_brokers(redis_server, tmp_path) as (first, second):
        token = first.login()
        session_id, host_token = consented_session(first, bearer(token), ["view"])

        async def survive() -> float:
            async with peer(second, session_id, token) as technician:
                await receive_type(technician, "welcome")
                host = await websockets.connect(first.ws_url(session_id), additional_headers=bearer(host_token))
                await receive_type(host, "welcome")
                await receive_type(technician, "peer_joined")
                started = time.monotonic()
                await asyncio.to_thread(first.kill)
                left = await receive_type(technician, "peer_left", timeout=LIVENESS_SECONDS + 3 * BEAT_SECONDS)
                told_after = time.monotonic() - started
                assert left["role"] == "host"
                await host.close()
                async with peer(second, session_id, host_token) as again:
                    assert (await receive_type(again, "welcome"))["peer"]["role"] == "technician"
                    assert (await receive_type(technician, "peer_joined"))["peer"]["role"] == "host"
                    await again.send(json.dumps({"type": "offer", "sdp": "v=0 again"}))
                    assert (await receive_type(technician, "offer"))["sdp"] == "v=0 again"
                return told_after

        told_after = asyncio.run(survive())
        assert told_after >= LIVENESS_SECONDS - 2 * BEAT_SECONDS, f"told after {told_after:.1f} s: before it was dead?"
