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

from host_client.grant_check import load_public_key, verify_grant
from protocol.grants import SignedGrant
from tests.support.api import bearer, end_session, join, paired_session, start_session
from tests.support.database import BrokerDatabases
from tests.support.polling import async_wait_until

pytestmark = pytest.mark.both_stacks

MAX_MESSAGE_BYTES = 16_384
"""This module's DESKHAND_SIGNAL_MAX_MESSAGE_BYTES: below the default, to prove the setting is used."""


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    """On SQLite, then on PostgreSQL."""
    return {"DESKHAND_SIGNAL_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES), "DESKHAND_ICE_LOOPBACK": "true",
            **broker_db.env()}


@asynccontextmanager
async def peer(broker, session_id: str, token: str | None) -> AsyncIterator[websockets.ClientConnection]:
    """A signalling connection to ``session_id`` with ``token`` (none: no Authorization header)."""
    headers = bearer(token) if token else {}
    async with websockets.connect(broker.ws_url(session_id), additional_headers=headers, max_size=2**21) as ws:
        yield ws


async def receive(ws, timeout: float = 5.0) -> dict[str, Any]:
    """The next message on ``ws``, decoded; fails after ``timeout`` seconds."""
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def greeted(ws) -> dict[str, Any]:
    """Read what the broker sends a new connection (``welcome``, then the session's ``grant``); the welcome."""
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    grant = await receive(ws)
    assert grant["type"] == "grant" and grant["grant"]["grant"]["session_id"] == welcome["session_id"], grant
    return welcome


async def introduced(first, second) -> None:
    """Read the greetings of two peers that connected in this order, and the first one's ``peer_joined``."""
    await greeted(first)
    await greeted(second)
    assert (await receive(first))["type"] == "peer_joined"


async def assert_silent(*sockets, timeout: float = 0.3) -> None:
    """Nothing more arrives on any of ``sockets`` within ``timeout`` seconds (watched together)."""
    outcomes = await asyncio.gather(*(receive(ws, timeout) for ws in sockets), return_exceptions=True)
    for ws, outcome in zip(sockets, outcomes, strict=True):
        assert isinstance(outcome, asyncio.TimeoutError), f"unexpected on {ws.id}: {outcome!r}"


async def refused_status(broker, session_id: str, token: str | None) -> websockets.InvalidStatus:
    """Open a connection that the broker must refuse before the handshake; the refusal."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with peer(broker, session_id, token):
            pass
    return refused.value


@pytest.fixture(scope="module")
def tech_token(broker) -> str:
    return broker.login()


async def test_both_peers_are_welcomed_introduced_and_relayed_verbatim(broker, admin, tech_token) -> None:
    joined = join(broker, start_session(broker, admin)["code"]).json()
    session_id, host_token = joined["session_id"], joined["host_token"]
    async with peer(broker, session_id, host_token) as host:
        welcome = await receive(host)
        assert welcome == {
            "type": "welcome", "session_id": session_id, "role": "host", "peer": None,
            "ice": {"servers": [], "loopback_only": True},
            "policy": {"recording_required": True, "recording_max_lag_seconds": 5.0, "recording_fps": 2.0,
                       "keystroke_logging": False},
        }
        # The grant is signed with the key the host was given when it joined.
        grant = await receive(host)
        assert grant["type"] == "grant"
        signed = SignedGrant.model_validate(grant["grant"])
        verified = verify_grant(signed, load_public_key(joined["broker_public_key"]), session_id=session_id)
        assert verified.technician_name == "Administrator"
        async with peer(broker, session_id, tech_token) as tech:
            tech_welcome = await greeted(tech)
            assert tech_welcome["role"] == "technician" and tech_welcome["peer"]["role"] == "host"
            assert tech_welcome["peer"]["host"] == {"machine_name": "test-pc", "os": "Linux 6", "user_name": "ann"}
            introduction = await receive(host)
            assert introduction == {
                "type": "peer_joined",
                "peer": {"role": "technician", "user": {"id": 1, "username": "admin", "display_name": "Administrator"}, "host": None},
            }

            offer = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n" + "a=x\r\n" * 2000, "attempt": 1}
            assert MAX_MESSAGE_BYTES - 4096 < len(json.dumps(offer)) < MAX_MESSAGE_BYTES  # a big but allowed SDP
            await host.send(json.dumps(offer))
            assert await receive(tech) == offer
            answer = {"type": "answer", "sdp": "v=0\r\n", "attempt": 1}
            await tech.send(json.dumps(answer))
            assert await receive(host) == answer
            ice = {"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdp_mid": "0", "sdp_mline_index": 0}
            await tech.send(json.dumps(ice))
            assert await receive(host) == ice
            end_of_candidates = {"type": "ice", "candidate": None, "sdp_mid": None, "sdp_mline_index": None}
            await host.send(json.dumps(end_of_candidates))
            assert await receive(tech) == end_of_candidates
            await assert_silent(host, tech)  # nothing echoed back to a sender
        assert await receive(host) == {"type": "peer_left", "role": "technician"}

    def signal_events() -> list[str]:
        rows = broker.sql("SELECT kind FROM audit_events WHERE session_id = ? AND kind LIKE 'signal.%'", session_id)
        return sorted(str(kind) for (kind,) in rows)

    await async_wait_until(lambda: len(signal_events()) >= 4, "both disconnections in the audit trail")
    assert signal_events() == ["signal.connected"] * 2 + ["signal.disconnected"] * 2


async def test_a_technician_waiting_first_is_told_when_the_host_arrives(broker, admin, tech_token) -> None:
    started = start_session(broker, admin)
    session_id = started["session"]["id"]
    async with peer(broker, session_id, tech_token) as tech:
        assert (await greeted(tech))["peer"] is None
        joined = join(broker, started["code"], machine_name="pc-2")
        async with peer(broker, session_id, joined.json()["host_token"]) as host:
            assert (await greeted(host))["peer"]["user"]["username"] == "admin"
            arrived = await receive(tech)
            assert arrived["type"] == "peer_joined" and arrived["peer"]["host"]["machine_name"] == "pc-2"


BAD_FRAMES = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('"offer"', "invalid_message"),
    ('{"type": "launch_missiles"}', "unknown_type"),
    ('{"sdp": "no type"}', "unknown_type"),
    ('{"type": "offer"}', "invalid_message"),
    ('{"type": "offer", "sdp": 5}', "invalid_message"),
    ('{"type": "offer", "sdp": "x", "extra": 1}', "invalid_message"),
    ('{"type": "ice", "sdp_mline_index": -1}', "invalid_message"),
    ('{"type": "offer", "sdp": "' + "a" * MAX_MESSAGE_BYTES + '"}', "too_large"),  # over the setting, far under 1 MiB
    (b"\xff\xfe\xfd", "invalid_json"),
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
            await greeted(ws)
        assert (await receive(host_a))["type"] == "peer_joined"
        assert (await receive(host_b))["type"] == "peer_joined"

        for i, (frame, code) in enumerate(BAD_FRAMES):
            await host_a.send(frame)
            error = await receive(host_a)
            assert error["type"] == "error" and error["code"] == code, frame[:40]
            assert error["message"] and set(error) == {"type", "code", "message"}
            # The connection is still usable: the next good frame is relayed.
            await host_a.send(json.dumps({"type": "offer", "sdp": f"after bad frame {i}"}))
            assert await receive(tech_a) == {"type": "offer", "sdp": f"after bad frame {i}", "attempt": None}
        await host_a.send(b'{"type": "offer", "sdp": "binary frames work too"}')
        assert (await receive(tech_a))["sdp"] == "binary frames work too"

        # Session B never saw any of it and still relays both ways.
        await assert_silent(host_b, tech_b, tech_a)
        await host_b.send(json.dumps({"type": "offer", "sdp": "b"}))
        assert await receive(tech_b) == {"type": "offer", "sdp": "b", "attempt": None}  # a host that does not count
        await tech_b.send(json.dumps({"type": "answer", "sdp": "b"}))
        assert await receive(host_b) == {"type": "answer", "sdp": "b", "attempt": None}
    rows = broker.sql("SELECT state FROM support_sessions WHERE id IN (?, ?)", session_a, session_b)
    assert rows == [("connected",), ("connected",)]


async def test_a_frame_over_the_server_limit_closes_only_that_connection(broker, admin, tech_token) -> None:
    session_a, host_a_token = paired_session(broker, admin)
    session_b, host_b_token = paired_session(broker, admin)
    async with peer(broker, session_b, host_b_token) as host_b, peer(broker, session_b, tech_token) as tech_b:
        await introduced(host_b, tech_b)
        async with peer(broker, session_a, host_a_token) as host_a:
            await greeted(host_a)
            await host_a.send("x" * (1024 * 1024 + 10))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await receive(host_a)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await host_b.send(json.dumps({"type": "offer", "sdp": "unaffected"}))
        assert await receive(tech_b) == {"type": "offer", "sdp": "unaffected", "attempt": None}


async def test_messages_without_the_other_peer_are_answered_with_peer_absent(broker, admin, tech_token) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host:
        await greeted(host)
        await host.send(json.dumps({"type": "offer", "sdp": "too early"}))
        error = await receive(host)
        assert error["type"] == "error" and error["code"] == "peer_absent"
        async with peer(broker, session_id, tech_token) as tech:
            await greeted(tech)
            assert (await receive(host))["type"] == "peer_joined"
            await assert_silent(tech)  # the early offer was not kept for later
        assert (await receive(host))["type"] == "peer_left"
        await host.send(json.dumps({"type": "offer", "sdp": "too late"}))
        assert (await receive(host))["code"] == "peer_absent"


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
        refused = await refused_status(broker, session_id, token)
        assert refused.response.status_code == status, (session_id, token)
        body = json.loads(refused.response.body)
        assert body["error"] and words in body["message"]
    audited = broker.sql("SELECT session_id, actor FROM audit_events WHERE kind = 'signal.wrong_session'")
    assert (session_b, f"host:{session_a}") in audited


async def test_a_host_token_cannot_open_another_session_even_while_its_own_is_open(broker, admin, tech_token) -> None:
    session_a, host_a_token = paired_session(broker, admin)
    session_b, host_b_token = paired_session(broker, admin)
    async with (
        peer(broker, session_a, host_a_token) as host_a,
        peer(broker, session_b, host_b_token) as host_b,
        peer(broker, session_b, tech_token) as tech_b,
    ):
        await greeted(host_a)
        await introduced(host_b, tech_b)
        refused = await refused_status(broker, session_b, host_a_token)
        assert refused.response.status_code == 403
        await host_b.send(json.dumps({"type": "offer", "sdp": "still mine"}))
        assert await receive(tech_b) == {"type": "offer", "sdp": "still mine", "attempt": None}
        await host_a.send(json.dumps({"type": "offer", "sdp": "nobody here yet"}))
        assert (await receive(host_a))["code"] == "peer_absent"  # its own connection is unharmed
        await assert_silent(host_a, host_b, tech_b)


async def test_end_from_the_host_ends_the_session_for_both(broker, admin, tech_token) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host, peer(broker, session_id, tech_token) as tech:
        await introduced(host, tech)
        await host.send(json.dumps({"type": "end", "reason": "all good now"}))
        expected = {"type": "session_ended", "ended_by": "host", "reason": "all good now"}
        assert await receive(tech) == expected
        assert await receive(host) == expected
        for ws in (tech, host):
            with pytest.raises(websockets.ConnectionClosed):
                await receive(ws)
    session = broker.http.get(f"/sessions/{session_id}", headers=admin).json()
    assert session["state"] == "ended" and session["ended_by"] == "host" and session["end_reason"] == "all good now"
    assert (await refused_status(broker, session_id, host_token)).response.status_code == 410
    assert (await refused_status(broker, session_id, tech_token)).response.status_code == 410


async def test_ending_over_rest_tells_the_host_and_closes_its_socket(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host:
        await greeted(host)
        async with httpx.AsyncClient(base_url=broker.api) as client:
            response = await client.post(f"/sessions/{session_id}/end", json={"reason": "done"}, headers=admin)
        assert response.status_code == 200 and response.json()["ended_by"] == "technician"
        assert await receive(host) == {"type": "session_ended", "ended_by": "technician", "reason": "done"}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(host)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert end_session(broker, admin, session_id).status_code == 409


async def test_a_reconnecting_peer_replaces_its_stale_connection(broker, admin, tech_token) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with peer(broker, session_id, host_token) as host, peer(broker, session_id, tech_token) as old:
        await introduced(host, old)
        async with peer(broker, session_id, tech_token) as new:
            assert (await greeted(new))["peer"]["role"] == "host"
            assert (await receive(old))["reason"] == "replaced by a newer connection"
            assert (await receive(host))["type"] == "peer_joined"
            await host.send(json.dumps({"type": "offer", "sdp": "to the new one"}))
            assert (await receive(new))["sdp"] == "to the new one"


async def test_peers_connecting_at_once_are_introduced_exactly_once(broker, admin, tech_token) -> None:
    for _ in range(10):
        session_id, host_token = paired_session(broker, admin)
        async with peer(broker, session_id, host_token) as host, peer(broker, session_id, tech_token) as tech:
            host_welcome, tech_welcome = await asyncio.gather(greeted(host), greeted(tech))
            # Exactly one side already saw the other; the other side is told once.
            first = host if host_welcome["peer"] is None else tech
            assert (host_welcome["peer"] is None) != (tech_welcome["peer"] is None)
            assert (await receive(first))["type"] == "peer_joined"
            await assert_silent(host, tech, timeout=0.2)


async def test_a_technician_who_signs_out_is_cut_off_from_live_signalling(broker) -> None:
    token = broker.login()
    session_id, host_token = paired_session(broker, bearer(token))
    async with peer(broker, session_id, token) as technician, peer(broker, session_id, host_token) as host:
        await introduced(technician, host)
        assert broker.http.post("/auth/logout", headers=bearer(token)).status_code == 204
        ended = None
        for _ in range(10):  # the broker checks every 2 s; grants and other news may come first
            message = await receive(technician, timeout=5)
            if message["type"] == "session_ended":
                ended = message
                break
        assert ended is not None and "signed out" in ended["reason"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(technician, timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        # The host stays, for a technician who signs in again; it only hears that this one left.
        assert (await receive(host))["type"] == "peer_left"
        await assert_silent(host)
