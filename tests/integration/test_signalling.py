"""The signalling WebSocket against a real broker: pairing, relaying, refusing bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets

from tests.support.api import bearer, join, start_session


def ws_url(broker, session_id: str) -> str:
    return broker.base_url.replace("http://", "ws://") + f"/api/v1/sessions/{session_id}/signal"


@asynccontextmanager
async def peer(broker, session_id: str, token: str | None) -> AsyncIterator[websockets.ClientConnection]:
    headers = bearer(token) if token else {}
    async with websockets.connect(ws_url(broker, session_id), additional_headers=headers, max_size=2**21) as ws:
        yield ws


async def receive(ws, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def paired_session(broker, admin) -> tuple[str, str]:
    """A session a host has joined: (session id, host token)."""
    started = start_session(broker, admin)
    joined = join(broker, started["code"]).json()
    return joined["session_id"], joined["host_token"]


@pytest.fixture(scope="module")
def tech_token(broker) -> str:
    return broker.login()


async def test_both_peers_are_welcomed_introduced_and_relayed(broker, admin, tech_token) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host:
        welcome = await receive(host)
        assert welcome["type"] == "welcome" and welcome["role"] == "host" and welcome["peer"] is None
        assert welcome["ice"] == {"servers": [], "loopback_only": False}
        async with peer(broker, session_id, tech_token) as tech:
            tech_welcome = await receive(tech)
            assert tech_welcome["peer"]["role"] == "host"
            assert tech_welcome["peer"]["host"]["machine_name"] == "test-pc"
            joined = await receive(host)
            assert joined == {"type": "peer_joined", "peer": {"role": "technician", "user": {"id": 1, "username": "admin", "display_name": "Administrator"}, "host": None}}

            offer = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}
            await host.send(json.dumps(offer))
            assert await receive(tech) == offer
            answer = {"type": "answer", "sdp": "v=0\r\n"}
            await tech.send(json.dumps(answer))
            assert await receive(host) == answer
            ice = {"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdp_mid": "0", "sdp_mline_index": 0}
            await tech.send(json.dumps(ice))
            assert await receive(host) == ice
        assert await receive(host) == {"type": "peer_left", "role": "technician"}


BAD_FRAMES = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('{"type": "launch_missiles"}', "unknown_type"),
    ('{"type": "offer"}', "invalid_message"),
    ('{"type": "offer", "sdp": "x", "extra": 1}', "invalid_message"),
    ('{"type": "ice", "sdp_mline_index": -1}', "invalid_message"),
    ('{"type": "offer", "sdp": "' + "a" * 70_000 + '"}', "too_large"),
]


async def test_bad_frames_get_an_error_and_disturb_neither_this_nor_another_session(broker, admin, tech_token) -> None:
    session_a, host_a_token = paired_session(broker, admin)
    session_b, host_b_token = paired_session(broker, admin)
    async with (
        peer(broker, session_a, host_a_token) as host_a,
        peer(broker, session_a, tech_token) as tech_a,
        peer(broker, session_b, host_b_token) as host_b,
        peer(broker, session_b, tech_token) as tech_b,
    ):
        for ws in (host_a, tech_a, host_b, tech_b):
            assert (await receive(ws))["type"] == "welcome"
        assert (await receive(host_a))["type"] == "peer_joined"
        assert (await receive(host_b))["type"] == "peer_joined"

        for frame, code in BAD_FRAMES:
            await host_a.send(frame)
            error = await receive(host_a)
            assert error["type"] == "error" and error["code"] == code, frame[:40]
            assert error["message"]
        await host_a.send(b'{"type": "offer", "sdp": "binary frames work too"}')
        assert (await receive(tech_a))["sdp"] == "binary frames work too"

        # Session A still relays, and session B never saw any of it.
        await host_a.send(json.dumps({"type": "offer", "sdp": "still fine"}))
        assert (await receive(tech_a))["sdp"] == "still fine"
        await host_b.send(json.dumps({"type": "offer", "sdp": "b"}))
        assert await receive(tech_b) == {"type": "offer", "sdp": "b"}
        with pytest.raises(asyncio.TimeoutError):
            await receive(tech_b, timeout=0.3)


async def test_a_frame_over_the_server_limit_closes_only_that_connection(broker, admin, tech_token) -> None:
    session_a, host_a_token = paired_session(broker, admin)
    session_b, host_b_token = paired_session(broker, admin)
    async with peer(broker, session_b, host_b_token) as host_b, peer(broker, session_b, tech_token) as tech_b:
        await receive(host_b), await receive(tech_b), await receive(host_b)
        async with peer(broker, session_a, host_a_token) as host_a:
            await receive(host_a)
            await host_a.send("x" * (1024 * 1024 + 10))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await receive(host_a)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await host_b.send(json.dumps({"type": "offer", "sdp": "unaffected"}))
        assert await receive(tech_b) == {"type": "offer", "sdp": "unaffected"}


async def test_messages_before_the_other_peer_arrives_are_answered_with_peer_absent(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host:
        await receive(host)
        await host.send(json.dumps({"type": "offer", "sdp": "too early"}))
        error = await receive(host)
        assert error["type"] == "error" and error["code"] == "peer_absent"


async def test_tokens_are_checked_before_the_socket_opens(broker, admin, tech_token) -> None:
    session_a, host_a_token = paired_session(broker, admin)
    session_b, _ = paired_session(broker, admin)
    cases = [
        (session_b, host_a_token, 403, "another session"),
        (session_a, None, 401, "Authorization"),
        (session_a, "dhh_forged", 401, "unknown host token"),
        (session_a, "dhu_forged", 401, "sign in again"),
        ("00000000-0000-0000-0000-000000000000", tech_token, 404, "does not exist"),
    ]
    for session_id, token, status, words in cases:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with peer(broker, session_id, token):
                pass
        assert refused.value.response.status_code == status, (session_id, token)
        assert words in json.loads(refused.value.response.body)["message"]
    audited = broker.sql("SELECT session_id FROM audit_events WHERE kind = 'signal.wrong_session'")
    assert (session_b,) in audited


async def test_end_from_the_host_ends_the_session_for_both(broker, admin, tech_token) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host, peer(broker, session_id, tech_token) as tech:
        await receive(host), await receive(tech), await receive(host)
        await host.send(json.dumps({"type": "end", "reason": "all good now"}))
        expected = {"type": "session_ended", "ended_by": "host", "reason": "all good now"}
        assert await receive(tech) == expected
        assert await receive(host) == expected
        with pytest.raises(websockets.ConnectionClosed):
            await receive(tech)
    session = httpx.get(broker.api + f"/sessions/{session_id}", headers=admin).json()
    assert session["state"] == "ended" and session["ended_by"] == "host" and session["end_reason"] == "all good now"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with peer(broker, session_id, host_token):
            pass
    assert refused.value.response.status_code == 410


async def test_ending_over_rest_tells_the_host_and_closes_its_socket(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host:
        await receive(host)
        async with httpx.AsyncClient() as client:
            response = await client.post(broker.api + f"/sessions/{session_id}/end", json={"reason": "done"}, headers=admin)
        assert response.status_code == 200
        assert await receive(host) == {"type": "session_ended", "ended_by": "technician", "reason": "done"}
        with pytest.raises(websockets.ConnectionClosed):
            await receive(host)


async def test_a_reconnecting_peer_replaces_its_stale_connection(broker, admin, tech_token) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host, peer(broker, session_id, tech_token) as old:
        await receive(host), await receive(old), await receive(host)
        async with peer(broker, session_id, tech_token) as new:
            assert (await receive(new))["peer"]["role"] == "host"
            assert (await receive(old))["reason"] == "replaced by a newer connection"
            assert (await receive(host))["type"] == "peer_joined"
            await host.send(json.dumps({"type": "offer", "sdp": "to the new one"}))
            assert (await receive(new))["sdp"] == "to the new one"


async def test_peers_connecting_at_once_are_introduced_exactly_once(broker, admin, tech_token) -> None:
    for _ in range(10):
        session_id, host_token = paired_session(broker, admin)
        async with peer(broker, session_id, host_token) as host, peer(broker, session_id, tech_token) as tech:
            host_welcome, tech_welcome = await asyncio.gather(receive(host), receive(tech))
            assert host_welcome["type"] == tech_welcome["type"] == "welcome"
            # Exactly one side already saw the other; the other side is told once.
            first = host if host_welcome["peer"] is None else tech
            assert (host_welcome["peer"] is None) != (tech_welcome["peer"] is None)
            assert (await receive(first))["type"] == "peer_joined"
            for ws in (host, tech):
                with pytest.raises(asyncio.TimeoutError):
                    await receive(ws, timeout=0.2)
