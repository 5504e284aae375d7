"""A whole session across separated networks: the only way through is coturn.

The broker and coturn run in the relay namespace on 198.18.0.1, the host in the user
namespace (on the run's Xvfb, reached through its socket file), and this test, the
Python console, in the tech namespace. User and tech cannot reach each other, coturn
refuses to relay to their own addresses, so media flows only between the two peers'
allocations: the first frame arriving means relaying works, and the console's nominated
pair is relay to relay.
"""

from __future__ import annotations

import time
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


LEGS = {"udp+tcp": ("udp", "tcp"), "tcp": ("tcp",), "tls": ("tls",)}
"""Which of coturn's URLs the broker hands out: all plain ones, or only TCP or TLS (UDP blocked, as on many office networks)."""


def turn_env(turn: CoturnServer, leg: str) -> dict[str, str]:
    """A broker that mints credentials for ``turn``'s URLs of ``leg``."""
    return {
        "DESKHAND_TURN_URLS": ",".join(turn.url(part) for part in LEGS[leg]),
        "DESKHAND_TURN_SECRET": SECRET,
        "DESKHAND_TURN_REALM": REALM,
        "DESKHAND_ICE_LOOPBACK": "false",
    }


def relay_broker(net: NetTopology, turn: CoturnServer, leg: str) -> AbstractContextManager[BrokerProcess]:
    """The broker in the relay namespace on 198.18.0.1, minting credentials for ``turn``.

    Start it with the thread already in the tech namespace (:meth:`NetTopology.entered`):
    that is where its readiness check, and then the console, reach 198.18.0.1 from.
    """
    if "turn_urls" not in Settings.model_fields:
        pytest.skip("this broker does not mint TURN credentials yet (DESKHAND_TURN_URLS)")
    return BrokerProcess.start(turn_env(turn, leg), host=PUBLIC_IP, wrap=net.wrap("relay"))


@pytest.mark.parametrize("leg", LEGS)
async def test_the_python_console_gets_the_picture_through_the_relay(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, leg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert coturn.certificate is not None
    # Both peers trust the test CA for turns: (the console is this process, the host inherits).
    monkeypatch.setenv("DESKHAND_TURN_CA_FILE", str(coturn.certificate.cert))
    # Entered here, after the fixtures: a session-wide Xvfb started from inside the tech
    # namespace would be killed with it.
    with net_topology.entered("tech"), relay_broker(net_topology, coturn, leg) as broker:
        async with live_session(broker, xvfb.env, "--consent", "view", "--insecure", wrap=net_topology.wrap("user")) as live:
            await live.view.wait_for_frame(45)
            types = await async_wait_until(
                lambda: selected_candidate_types(live.view.peer_connection), "a nominated candidate pair"
            )
            assert types == ("relay", "relay"), coturn.log()[-3000:]
        ours = [a for a in coturn.allocations() if live.session_id in a.username]
        # One credential per peer, named for this session, both still valid.
        users = {a.username for a in ours}
        assert len(users) == 2, users
        assert all(int(user.split(":", 1)[0]) > time.time() for user in users)
        if leg == "tls":
            assert all(a.tls for a in ours), ours
