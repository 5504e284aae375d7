"""A whole session across separated networks: the only way through is coturn.

The broker and coturn run in the relay namespace on 198.18.0.1, the host in the user
namespace (on the run's Xvfb, reached through its socket file), and this test, the
Python console, in the tech namespace. User and tech cannot reach each other, coturn
refuses to relay to their own addresses, so media flows only between the two peers'
allocations: the first frame arriving means relaying works, and the console's nominated
pair is relay to relay.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest

from broker.settings import Settings
from tests.support.broker import BrokerProcess
from tests.support.coturn import REALM, SECRET, CoturnServer
from tests.support.live_session import live_session
from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.polling import async_wait_until
from tests.support.selected_pair import selected_candidate_types
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow


def turn_env(turn: CoturnServer) -> dict[str, str]:
    """A broker that mints credentials for ``turn`` (UDP and TCP: TLS trust is the console's own test)."""
    return {
        "DESKHAND_TURN_URLS": ",".join(url for url in turn.urls if url.startswith("turn:")),
        "DESKHAND_TURN_SECRET": SECRET,
        "DESKHAND_TURN_REALM": REALM,
        "DESKHAND_ICE_LOOPBACK": "false",
    }


def relay_broker(net: NetTopology, turn: CoturnServer) -> AbstractContextManager[BrokerProcess]:
    """The broker in the relay namespace on 198.18.0.1, minting credentials for ``turn``.

    Start it with the thread already in the tech namespace (:meth:`NetTopology.entered`):
    that is where its readiness check, and then the console, reach 198.18.0.1 from.
    """
    if "turn_urls" not in Settings.model_fields:
        pytest.skip("this broker does not mint TURN credentials yet (DESKHAND_TURN_URLS)")
    return BrokerProcess.start(turn_env(turn), host=PUBLIC_IP, wrap=net.wrap("relay"))


async def test_the_python_console_gets_the_picture_through_the_relay(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer
) -> None:
    # Entered here, after the fixtures: a session-wide Xvfb started from inside the tech
    # namespace would be killed with it.
    with net_topology.entered("tech"), relay_broker(net_topology, coturn) as broker:
        async with live_session(broker, xvfb.env, "--consent", "view", "--insecure", wrap=net_topology.wrap("user")) as live:
            await live.view.wait_for_frame(45)
            types = await async_wait_until(
                lambda: selected_candidate_types(live.view.peer_connection), "a nominated candidate pair"
            )
            assert types == ("relay", "relay"), coturn.log()[-3000:]
