"""The link emulator does to real packets what it says (tests/support/link_emulator.py).

In the separated networks of :mod:`tests.support.netns`: a tbf-shaped uplink carries no
more than its rate, and the impairing UDP relay in the relay namespace delays and drops the
packets of the user's network, not the technician's. Bounds are generous: these check that
the emulator works, they do not measure it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from peer.aiortc_hooks import selected_route
from tests.netns.conftest import relay_broker
from tests.support.coturn import CoturnServer
from tests.support.link_emulator import RELAY_PORT, ImpairedRelay, Impairment, shape, unshape
from tests.support.live_session import live_session
from tests.support.netns import PUBLIC_IP, NetTopology, Side
from tests.support.polling import async_wait_until
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow

SINK_PORT = 4100
ECHO_PORT = 4101


def upload_seconds(net: NetTopology, size: int) -> float:
    """Seconds for the user to send ``size`` bytes over TCP to a reader on 198.18.0.1, until it has read them all."""
    with net.entered("relay"):
        listener = socket.create_server((PUBLIC_IP, SINK_PORT))
    received = 0

    def read() -> None:
        nonlocal received
        connection, _ = listener.accept()
        with connection:
            while chunk := connection.recv(65536):
                received += len(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with net.entered("user"):
            sender = socket.create_connection((PUBLIC_IP, SINK_PORT), timeout=30)
        started = time.monotonic()
        with sender:
            sender.sendall(b"x" * size)
        reader.join(60)
        return time.monotonic() - started
    finally:
        listener.close()
        reader.join(5)
        assert received == size, received


def test_a_shaped_uplink_carries_no_more_than_its_rate(net_topology: NetTopology) -> None:
    size = 250_000  # 2 Mbit: 2 s at 1 Mbit/s
    shape(net_topology, "user", "up", kbit=1000)
    try:
        shaped = upload_seconds(net_topology, size)
    finally:
        unshape(net_topology, "user", "up")
    unshaped = upload_seconds(net_topology, size)
    assert shaped >= 1.6, shaped
    assert unshaped < 0.5, unshaped
    print(f"\n250 kB up: {shaped:.2f} s at 1 Mbit/s, {unshaped * 1000:.1f} ms unshaped")


@contextmanager
def udp_echo(net: NetTopology) -> Iterator[None]:
    """A UDP echo on 198.18.0.1:4101 in the relay namespace, standing in for coturn."""
    with net.entered("relay"):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((PUBLIC_IP, ECHO_PORT))
    server.settimeout(0.2)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            try:
                data, addr = server.recvfrom(2048)
            except TimeoutError:
                continue
            server.sendto(data, addr)

    thread = threading.Thread(target=echo)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        server.close()


def round_trips(net: NetTopology, side: Side, count: int = 200) -> list[float | None]:
    """Round trips of ``count`` numbered packets through the relay from ``side``, 10 ms apart (None: lost)."""
    with net.entered(side):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(0.01)
    sent: dict[int, float] = {}
    back: dict[int, float] = {}
    with client:
        for seq in range(count):
            sent[seq] = time.monotonic()
            client.sendto(seq.to_bytes(4, "big"), (PUBLIC_IP, RELAY_PORT))
            try:
                while True:
                    data, _ = client.recvfrom(2048)
                    back[int.from_bytes(data, "big")] = time.monotonic()
            except TimeoutError:
                pass
        deadline = time.monotonic() + 1.0
        client.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                data, _ = client.recvfrom(2048)
                back[int.from_bytes(data, "big")] = time.monotonic()
            except TimeoutError:
                continue
    # Jitter changes the gaps, never the order: what comes back comes back in the order sent.
    assert list(back) == sorted(back), list(back)
    return [back[seq] - sent[seq] if seq in back else None for seq in range(count)]


def test_the_relay_delays_and_drops_the_users_packets_only(net_topology: NetTopology) -> None:
    impairment = Impairment(delay=0.05, jitter=0.02, loss=0.1)
    with udp_echo(net_topology), ImpairedRelay.start(net_topology, impairment, ["198.18.1.0/24"],
                                                      upstream_port=ECHO_PORT):
        user = round_trips(net_topology, "user")
        tech = round_trips(net_topology, "tech")
    arrived = [rtt for rtt in user if rtt is not None]
    # Dropped each way: about 81 % come back; delayed each way: about 100 ms there and back.
    assert 0.6 <= len(arrived) / len(user) <= 0.95, len(arrived)
    median = sorted(arrived)[len(arrived) // 2]
    assert 0.09 <= median <= 0.2, median
    # The technician's network is not impaired: everything comes back, the median within 10 ms (the user's
    # is 90 ms or more). A busy machine may hold one echo back for tens of ms (CI saw one past 50 ms).
    back = [rtt for rtt in tech if rtt is not None]
    assert len(back) == len(tech), tech
    assert sorted(back)[len(back) // 2] < 0.01 and max(back) < 0.2, back
    print(f"\nuser: {len(arrived)} of {len(user)} back, median round trip {median * 1000:.0f} ms")


async def test_a_relayed_session_runs_through_the_emulated_link(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer
) -> None:
    """The broker hands out only the impairing relay's URL: the user's media crosses 40 ms each way
    and a 20 Mbit/s uplink, and the ICE round trip the console measures shows it."""
    net = net_topology
    env = {**coturn.broker_env("udp"), "DESKHAND_TURN_URLS": f"turn:{PUBLIC_IP}:{RELAY_PORT}?transport=udp"}
    shape(net, "user", "up", kbit=20_000)
    try:
        with ImpairedRelay.start(net, Impairment(delay=0.04), ["198.18.1.0/24"]), net.entered("tech"), \
                relay_broker(net, env) as broker:
            async with live_session(broker, xvfb.env, "--consent", "view", "--insecure", wrap=net.wrap("user")) as live:
                await live.view.wait_for_frame(45)
                pc = live.view.peer_connection
                assert pc is not None
                route = await async_wait_until(lambda: selected_route(pc), "a nominated candidate pair")
                assert (route.local_type, route.remote_type) == ("relay", "relay"), route
                rtt = None
                for _ in range(100):
                    if (rtt := await live.view.round_trip()) is not None:
                        break
                    await asyncio.sleep(0.1)
    finally:
        unshape(net, "user", "up")
    # The console's check crosses the user's impaired leg both ways: at least 80 ms.
    assert rtt is not None and 0.08 <= rtt <= 0.5, rtt
