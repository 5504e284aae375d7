"""A relay's first send to a new peer leaves at once behind its ChannelBind, through the real coturn
(peer.aiortc_hooks.pipeline_turn_permissions).

The user's leg has 150 ms of round trip (the impairing relay in front of coturn). aioice's TURN
client sends nothing to a new peer before its ChannelBind is answered: the first ICE check
through a relay comes back after two round trips. With the hook the check leaves as a Send
indication right behind the ChannelBind, which installs the permission first: one round trip.
"""

from __future__ import annotations

import asyncio
import time

import aioice.turn
import pytest
from aioice import stun

from peer import aiortc_hooks
from tests.support.coturn import CoturnServer
from tests.support.link_emulator import RELAY_PORT, ImpairedRelay, Impairment
from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.turn_probe import start_echo

pytestmark = pytest.mark.slow

ECHO_PORT = 7020
ONE_WAY = 0.075
"""Seconds the impairing relay holds each of the user's packets, each way."""


class _Arrivals(asyncio.DatagramProtocol):
    """What comes back to the relayed socket: the moment of the first datagram, and how many."""

    def __init__(self) -> None:
        self.first: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.count = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.count += 1
        if not self.first.done():
            self.first.set_result(time.monotonic())


async def _first_echo(username: str, password: str) -> tuple[float, int]:
    """Seconds from handing one STUN request to a fresh allocation until the echo peer's copy is
    back, and the copies back after another second."""
    arrivals = _Arrivals()
    transport, _ = await aioice.turn.create_turn_endpoint(
        lambda: arrivals, server_addr=(PUBLIC_IP, RELAY_PORT), username=username, password=password)
    try:
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        started = time.monotonic()
        transport.sendto(bytes(request), (PUBLIC_IP, ECHO_PORT))
        back = await asyncio.wait_for(arrivals.first, 5)
        await asyncio.sleep(1)
        return back - started, arrivals.count
    finally:
        transport.close()
        await asyncio.sleep(0.1)  # the allocation's deletion leaves


@pytest.fixture(scope="module")
def echo_peer(net_topology: NetTopology) -> None:
    """A peer on the relay's public address (the one coturn lets allocations reach) echoing what it gets."""
    start_echo(net_topology, "relay", f"{PUBLIC_IP}:{ECHO_PORT}")


@pytest.mark.parametrize("pipelined", [True, False])
def test_the_first_check_through_a_relay_takes_one_round_trip_not_two(
    net_topology: NetTopology, coturn: CoturnServer, echo_peer: None, pipelined: bool
) -> None:
    net = net_topology
    credential = coturn.credential("first-send", int(time.time()) + 600)
    aiortc_hooks.pipeline_turn_permissions(pipelined)
    try:
        with ImpairedRelay.start(net, Impairment(delay=ONE_WAY), ["198.18.1.0/24"]), net.entered("user"):
            seconds, copies = asyncio.run(_first_echo(credential.username, credential.password))
    finally:
        aiortc_hooks.pipeline_turn_permissions(False)
    round_trip = 2 * ONE_WAY
    print(f"\nfirst echo through the relay {'pipelined' if pipelined else 'as aioice'}: {seconds * 1000:.0f} ms")
    if pipelined:
        assert round_trip <= seconds < 1.6 * round_trip, seconds
        assert copies == 2  # the indication's copy, then aioice's own over the channel
    else:
        assert seconds >= 2 * round_trip, seconds
        assert copies == 1
