"""A whole session across separated networks: the only way through is coturn.

The broker and coturn run in the relay namespace on 198.18.0.1, the host in the user
namespace (on the run's Xvfb, reached through its socket file), and this test, the
Python console, in the tech namespace. User and tech cannot reach each other, coturn
refuses to relay to their own addresses, so media flows only between the two peers'
allocations: the first frame arriving means relaying works, and the console's nominated
pair is relay to relay.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from peer.aiortc_hooks import selected_route
from tech_console.remote_view import ViewError
from tests.netns.conftest import relay_broker
from tests.support.coturn import CoturnServer
from tests.support.live_session import Live, live_session
from tests.support.netns import NetTopology
from tests.support.polling import async_wait_until
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow


LEGS = {"udp+tcp": ("udp", "tcp"), "tcp": ("tcp",), "tls": ("tls",)}
"""Which of coturn's URLs the broker hands out: all plain ones, or only TCP or TLS (UDP blocked, as on many office networks)."""


@pytest.mark.parametrize("leg", LEGS)
async def test_the_python_console_gets_the_picture_through_the_relay(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, leg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert coturn.certificate is not None
    # Both peers trust the test CA for turns: (the console is this process, the host inherits).
    monkeypatch.setenv("DESKHAND_TURN_CA_FILE", str(coturn.certificate.cert))
    # Entered here, after the fixtures: a session-wide Xvfb started from inside the tech
    # namespace would be killed with it.
    with net_topology.entered("tech"), relay_broker(net_topology, coturn.broker_env(*LEGS[leg])) as broker:
        async with live_session(broker, xvfb.env, "--consent", "view", "--insecure", wrap=net_topology.wrap("user")) as live:
            await live.view.wait_for_frame(45)
            pc = live.view.peer_connection
            assert pc is not None
            route = await async_wait_until(lambda: selected_route(pc), "a nominated candidate pair")
            assert (route.local_type, route.remote_type) == ("relay", "relay"), coturn.log()[-3000:]
            # This side's leg to the relay is one the broker handed out. With UDP and TCP both
            # working either may carry the session: aioice nominates the first pair whose check
            # succeeds, the preference (UDP first) only orders the checks.
            assert route.turn_leg in LEGS[leg], route
            # What the CLI prints: the route and the round trip (measured by the ICE checks, soon after connecting).
            wanted = re.compile(rf"media: relayed through TURN over {route.turn_leg.upper()}, round trip \d+ ms")
            for _ in range(50):
                if wanted.fullmatch(status := await live.view.route_status()):
                    break
                await asyncio.sleep(0.1)
            assert wanted.fullmatch(status), status
        ours = [a for a in coturn.allocations() if live.session_id in a.username]
        # One credential per peer, named for this session, both still valid.
        users = {a.username for a in ours}
        assert len(users) == 2, users
        assert all(int(user.split(":", 1)[0]) > time.time() for user in users)
        if leg == "tls":
            assert all(a.tls for a in ours), ours


def host_line(live: Live, text: str) -> str:
    """The first line of the host's terminal holding ``text`` (blocks; lines read are gone from ``live.output``)."""
    assert live.host.stdout is not None
    for line in live.host.stdout:
        if text in line:
            return line
    raise AssertionError(f"the host exited without saying {text!r}")


async def test_without_a_relay_both_sides_are_told_within_20_s(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer
) -> None:
    """No TURN configured: no path at all. (A relay refusing the credentials is the browser's case,
    tests/netns/test_relayed_browser.py; the Python peers' words for it are unit-tested against a
    refusing relay in tests/unit/test_aiortc_hooks.py.)"""
    env = {"DESKHAND_ICE_LOOPBACK": "false"}
    with net_topology.entered("tech"), relay_broker(net_topology, env) as broker:
        async with live_session(broker, xvfb.env, "--consent", "view", "--insecure", wrap=net_topology.wrap("user")) as live:
            started = time.monotonic()
            told_user = asyncio.create_task(asyncio.to_thread(host_line, live, "Could not connect to"))
            with pytest.raises(ViewError, match="Could not connect to"):
                await live.view.wait_for_frame(20)
            await asyncio.wait_for(told_user, 20 - (time.monotonic() - started))
