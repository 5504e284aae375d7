"""TURN credentials and ICE failures over signalling, through a real broker with a relay configured.

Each peer's ``welcome`` carries its own credential, expiring with its grant, and each renewed grant
a fresh one (``ice_config``); the join answer never carries one. A peer's ``ice_failed`` reaches the
other peer and the trail keeps it once per attempt (``session.ice_failed``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from broker.sessions.ice_failures import MAX_AUDITED_ATTEMPTS
from broker.sessions.turn_credentials import mint
from tests.support.api import join, start_session
from tests.support.polling import async_wait_until
from tests.support.signalling import peer, receive, receive_type

GRANT_TTL = 30
SECRET = "integration-secret-0123456789abcdef+/="
TURN_URLS = ["turns:198.18.0.1:443", "turn:198.18.0.1?transport=tcp", "turn:198.18.0.1"]


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {
        "DESKHAND_GRANT_TTL_SECONDS": str(GRANT_TTL),
        "DESKHAND_ICE_SERVERS": '[{"urls": ["stun:198.18.0.1:3478"]}]',
        "DESKHAND_TURN_URLS": ",".join(TURN_URLS),
        "DESKHAND_TURN_SECRET": SECRET,
    }


def joined_session(broker, admin) -> dict[str, Any]:
    response = join(broker, start_session(broker, admin)["code"])
    assert response.status_code == 200, response.text
    return response.json()


def relay_of(ice: dict[str, Any]) -> dict[str, Any]:
    """The TURN server of an ICE configuration (the last one, after the STUN servers)."""
    assert ice["servers"][0] == {"urls": ["stun:198.18.0.1:3478"], "username": None, "credential": None}
    return ice["servers"][-1]


def assert_minted(relay: dict[str, Any], session_id: str, role: str, expires_at: int) -> None:
    credential = mint(SECRET.encode(), f"{session_id}.{role}", expires_at)
    assert relay == {"urls": ["turn:198.18.0.1", "turn:198.18.0.1?transport=tcp", "turns:198.18.0.1:443"],
                     "username": credential.username, "credential": credential.password}


async def test_each_peer_is_welcomed_with_its_own_credential_expiring_with_its_grant(broker, admin) -> None:
    joined = joined_session(broker, admin)
    session_id = joined["session_id"]
    async with peer(broker, session_id, joined["host_token"]) as host, peer(broker, session_id, broker.login()) as tech:
        welcomes = {}
        for role, ws in (("host", host), ("technician", tech)):
            welcome = await receive_type(ws, "welcome")
            grant = (await receive(ws))["grant"]["grant"]
            welcomes[role] = relay_of(welcome["ice"])
            assert_minted(welcomes[role], session_id, role, grant["expires_at"])
        assert welcomes["host"]["username"] != welcomes["technician"]["username"]
    other = joined_session(broker, admin)
    async with peer(broker, other["session_id"], other["host_token"]) as host:
        elsewhere = relay_of((await receive_type(host, "welcome"))["ice"])
        assert elsewhere["credential"] != welcomes["host"]["credential"]
    # Nothing a peer is sent holds the relay's long-term secret.
    assert SECRET not in json.dumps([welcomes, elsewhere])


def test_the_join_answer_carries_no_credential(broker, admin) -> None:
    response = join(broker, start_session(broker, admin)["code"])
    assert response.status_code == 200
    assert response.json()["ice"] == {"servers": [{"urls": ["stun:198.18.0.1:3478"], "username": None,
                                                   "credential": None}], "loopback_only": False}
    assert "turn" not in response.text and SECRET not in response.text


async def test_an_ice_failure_is_relayed_and_audited_once_per_attempt(broker, admin) -> None:
    joined = joined_session(broker, admin)
    session_id = joined["session_id"]
    failed = {"type": "ice_failed", "attempt": 1, "seconds": 15.0, "local_types": ["host", "relay"],
              "remote_types": ["host", "srflx"],
              "turn_failures": [{"url": "turns:198.18.0.1:443", "reason": "the relay refused the credentials (401)"}]}
    tech_token = broker.login()
    async with peer(broker, session_id, tech_token) as tech:
        async with peer(broker, session_id, joined["host_token"]) as host:
            await receive_type(host, "grant")
            await receive_type(tech, "peer_joined")
            for attempt in (1, 1, 2):
                await host.send(json.dumps({**failed, "attempt": attempt}))
                assert await receive_type(tech, "ice_failed") == {**failed, "attempt": attempt}
        # A reconnected host telling of attempt 2 again adds nothing to the trail; the technician's own counts apart.
        async with peer(broker, session_id, joined["host_token"]) as host:
            await receive_type(host, "grant")
            await host.send(json.dumps({**failed, "attempt": 2}))
            await receive_type(tech, "ice_failed")
            await tech.send(json.dumps({**failed, "attempt": 1, "turn_failures": []}))
            await receive_type(host, "ice_failed")
    rows = broker.sql("SELECT actor, data FROM audit_events WHERE kind = 'session.ice_failed' AND session_id = ? "
                      "ORDER BY id", session_id)
    audited = [(actor, json.loads(data)) for actor, data in rows]
    expected = {key: value for key, value in failed.items() if key != "type"}
    assert audited == [
        (f"host:{session_id}", expected),
        (f"host:{session_id}", {**expected, "attempt": 2}),
        ("user:admin", {**expected, "turn_failures": []}),
    ]


async def test_a_flood_of_ice_failures_is_rate_limited_and_capped_before_the_trail(broker, admin) -> None:
    joined = joined_session(broker, admin)
    session_id = joined["session_id"]
    failed = {"type": "ice_failed", "seconds": 15.0, "local_types": ["host"], "remote_types": [], "turn_failures": []}
    async with peer(broker, session_id, joined["host_token"]) as host, peer(broker, session_id, broker.login()) as tech:
        await receive_type(tech, "grant")
        await receive_type(host, "grant")
        started = time.monotonic()
        for attempt in range(1, 301):
            await host.send(json.dumps({**failed, "attempt": attempt}))
        # Still served: once the flood is read (each audit is a commit), an end of candidates gets through.
        while True:
            await host.send(json.dumps({"type": "ice", "candidate": ""}))
            try:
                await receive_type(tech, "ice", timeout=1)
                break
            except TimeoutError:
                assert time.monotonic() - started < 90, "the flood was never read"
        elapsed = time.monotonic() - started
        assert (await receive_type(host, "error"))["code"] == "rate_limited"
        # One more after a pause (the rate has a token again), so one report surely comes after the cap.
        await asyncio.sleep(0.2)
        await host.send(json.dumps({**failed, "attempt": 1000}))

        def trailed() -> list[str]:
            return [kind for (kind,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ? AND kind LIKE "
                                                  "'session.ice_fail%' ORDER BY id", session_id)]

        await async_wait_until(lambda: "session.ice_failures_capped" in trailed(), "the cap in the trail", timeout=10)
    kinds = trailed()
    # The burst (100) passes the rate, then 20 a second; the trail keeps 100 attempts of a peer, then
    # says once that it stopped: never one event per frame sent, however long the flood goes on.
    assert kinds == ["session.ice_failed"] * MAX_AUDITED_ATTEMPTS + ["session.ice_failures_capped"], (len(kinds), elapsed)


@pytest.mark.slow
async def test_credentials_are_renewed_with_the_grant(broker, admin) -> None:
    joined = joined_session(broker, admin)
    session_id = joined["session_id"]
    async with peer(broker, session_id, joined["host_token"]) as host, peer(broker, session_id, broker.login()) as tech:
        welcome = relay_of((await receive_type(host, "welcome"))["ice"])
        first = (await receive(host))["grant"]["grant"]
        await receive_type(tech, "grant")  # its own, with its welcome
        renewed = (await receive_type(host, "grant", timeout=GRANT_TTL / 3 + 5))["grant"]["grant"]
        fresh = relay_of((await receive(host))["ice"])  # right behind its grant
        assert (await receive_type(tech, "grant", timeout=5))["grant"]["grant"] == renewed
        for_technician = relay_of((await receive(tech))["ice"])
    assert renewed["expires_at"] > first["expires_at"]
    assert_minted(fresh, session_id, "host", renewed["expires_at"])
    assert_minted(for_technician, session_id, "technician", renewed["expires_at"])
    assert fresh["credential"] != welcome["credential"]
