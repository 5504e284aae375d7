"""A signalling connection the broker fails to serve leaves nothing behind (a real broker on SQLite).

The failure is real: a trigger in the broker's database refuses the audit event
``signal.connected``, as a database that cannot take the write would. The
connection was attached to its session by then (greeted, the other peer told):
it must be detached again, the other peer told it left, the grant watcher must
let go of the session, and the client closed with a reason that says to connect
again. (SQLite only: the trigger is SQLite's; the broker's handling is the same
on any database.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import websockets

from broker.routes.signal import BROKER_FAILED, CLOSE_BROKER_FAILED
from tests.support.accounts import PASSWORD, make_user
from tests.support.api import bearer, paired_session
from tests.support.polling import async_wait_until

FIXER = ["session.start", "tickets.read", "tickets.write", "view", "control"]
"""The test technician's role: what a session needs, with control to take away."""

FAILURE_LOG = "recording the connection of the host of session {} failed; it was disconnected"


@contextmanager
def connections_unrecordable(broker) -> Iterator[None]:
    """While inside, the database refuses every ``signal.connected`` audit event."""
    broker.sql(
        "CREATE TRIGGER refuse_signal_connected BEFORE INSERT ON audit_events"
        " WHEN NEW.kind = 'signal.connected'"
        " BEGIN SELECT RAISE(ABORT, 'the test refuses signal.connected'); END"
    )
    try:
        yield
    finally:
        broker.sql("DROP TRIGGER refuse_signal_connected")


async def receive(ws, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def greeted(ws) -> dict[str, Any]:
    """The welcome and the grant a new connection gets; the welcome."""
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    assert (await receive(ws))["type"] == "grant"
    return welcome


async def dropped_host(broker, session_id: str, host_token: str) -> websockets.ConnectionClosed:
    """Connect as the host while connections cannot be recorded; how the broker closed it."""
    async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(host_token)) as ws:
        seen = []
        try:
            while True:
                seen.append(await receive(ws))
        except websockets.ConnectionClosed as closed:
            assert [m["type"] for m in seen] in (["welcome", "grant"], []), seen
            return closed


def grants_audited(broker, session_id: str) -> int:
    return broker.sql("SELECT COUNT(*) FROM audit_events WHERE kind = 'grant.issued' AND session_id = ?",
                      session_id)[0][0]


def audited(broker, session_id: str, kind: str, actor: str = "host:%") -> int:
    """How many ``kind`` events of the session's actors like ``actor`` the trail holds."""
    return broker.sql("SELECT COUNT(*) FROM audit_events WHERE kind = ? AND session_id = ? AND actor LIKE ?",
                      kind, session_id, actor)[0][0]


async def test_a_host_whose_connection_cannot_be_recorded_is_detached_and_the_technician_told(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    async with websockets.connect(broker.ws_url(session_id), additional_headers=admin) as tech:
        await greeted(tech)
        # The greeting goes out before the connection is audited: the technician's must be in before the trigger.
        await async_wait_until(lambda: audited(broker, session_id, "signal.connected", "user:%") == 1,
                               "the technician's connection is audited")
        with connections_unrecordable(broker):
            closed = await dropped_host(broker, session_id, host_token)
        assert (closed.rcvd.code, closed.rcvd.reason) == (CLOSE_BROKER_FAILED, BROKER_FAILED)
        # The technician heard the host come, and go again.
        assert (await receive(tech))["type"] == "peer_joined"
        assert await receive(tech) == {"type": "peer_left", "role": "host"}
        # Nobody is attached as the host any more: what the technician sends is refused, not lost.
        await tech.send(json.dumps({"type": "offer", "sdp": "v=0\r\n"}))
        refused = await receive(tech)
        assert (refused["type"], refused["code"]) == ("error", "peer_absent"), refused

        # The host connects again, and everything works as before.
        async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(host_token)) as host:
            welcome = await greeted(host)
            assert welcome["peer"]["role"] == "technician"
            assert (await receive(tech))["type"] == "peer_joined"
            await tech.send(json.dumps({"type": "offer", "sdp": "v=0\r\n"}))
            assert (await receive(host))["type"] == "offer"

    # The trail has the connection that was recorded, opened and closed once; none of the failed one.
    await async_wait_until(lambda: audited(broker, session_id, "signal.disconnected") == 1,
                           "the host's disconnection is audited")
    assert audited(broker, session_id, "signal.connected") == 1
    # The broker said why, once, and without the host's secret.
    said = await async_wait_until(
        lambda: [line for line in broker.output if FAILURE_LOG.format(session_id) in line], "the failure is logged")
    assert len(said) == 1, broker.output_text()
    assert host_token not in "\n".join(broker.output)


async def test_a_lone_host_whose_connection_cannot_be_recorded_leaves_no_grant_behind(broker, admin) -> None:
    """The grant watcher forgets the session: a later grant change is issued to nobody there."""
    created = broker.http.post("/roles", json={"name": "fixer", "permissions": FIXER}, headers=admin)
    assert created.status_code == 201, created.text
    make_user(broker, "fixer", role="fixer")
    fixer = bearer(broker.login("fixer", PASSWORD))
    dropped_session, dropped_token = paired_session(broker, fixer)
    watched_session, watched_token = paired_session(broker, fixer)
    with connections_unrecordable(broker):
        closed = await dropped_host(broker, dropped_session, dropped_token)
    assert closed.rcvd.code == CLOSE_BROKER_FAILED
    before = grants_audited(broker, dropped_session)

    async with websockets.connect(broker.ws_url(watched_session), additional_headers=bearer(watched_token)) as host:
        await greeted(host)
        changed = broker.http.patch("/roles/fixer", json={"permissions": FIXER[:-1]}, headers=admin)
        assert changed.status_code == 200, changed.text
        # The watcher's round that brought this grant looked at every session it holds, in one step.
        while (message := await receive(host, timeout=10))["type"] != "grant":
            pass
        assert "control" not in message["grant"]["grant"]["permissions"]
    assert grants_audited(broker, dropped_session) == before, "a grant was issued to a session nobody is connected to"

    # And the dropped session's host can connect again.
    async with websockets.connect(broker.ws_url(dropped_session), additional_headers=bearer(dropped_token)) as host:
        welcome = await greeted(host)
        assert welcome["session_id"] == dropped_session
