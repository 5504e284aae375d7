"""The TCP half of the link emulator does to a real stream what it says (tests/support/tcp_link.py).

A TCP echo in the user namespace, reached from the technician's through the delaying relay in
the relay namespace: round trips take the delay both ways, and with nftables dropping a share
of the echo port's packets at both ends of the user's link the stream still arrives whole
(TCP resends), only later. Bounds are generous: these check that the emulator works.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.tcp_link import LOSS_TABLE, DelayedTcpRelay, dropped, tcp_loss

pytestmark = pytest.mark.slow

ECHO_PORT = 4200


@contextmanager
def tcp_echo(net: NetTopology) -> Iterator[tuple[str, int]]:
    """A TCP echo on the user's address, one connection at a time."""
    with net.entered("user"):
        listener = socket.create_server((net.address("user"), ECHO_PORT))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(data)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield net.address("user"), ECHO_PORT
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def echo_through(net: NetTopology, port: int, payload: bytes) -> tuple[float, float, bytes]:
    """(first round trip, whole exchange, what came back) from the tech namespace through the relay."""
    with net.entered("tech"):
        client = socket.create_connection((PUBLIC_IP, port), timeout=30)
    with client:
        started = time.monotonic()
        client.sendall(b"?")
        assert client.recv(1) == b"?"
        first = time.monotonic() - started
        received = bytearray()
        sender = threading.Thread(target=client.sendall, args=(payload,))
        sender.start()
        while len(received) < len(payload):
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
        sender.join()
        return first, time.monotonic() - started, bytes(received)


def test_the_relay_delays_and_the_rules_lose_yet_the_stream_arrives_whole(net_topology: NetTopology) -> None:
    net = net_topology
    payload = bytes(range(256)) * 2000  # 512 kB
    with tcp_echo(net) as served_at, DelayedTcpRelay.start(net, served_at, delay=0.05) as relay:
        first, _, echoed = echo_through(net, relay.port, payload)
        assert echoed == payload
        assert 0.09 <= first <= 1.0, first
        with tcp_loss(net, ECHO_PORT, 0.05):
            assert LOSS_TABLE in net.run("user", "nft", "list", "tables").stdout
            _, lossy, echoed = echo_through(net, relay.port, payload)
            lost = dropped(net)
        assert echoed == payload
        # About 1100 packets of one segment each crossed (data and acknowledgements): some 55 lost, not a handful
        # of 64 kB offload chunks.
        assert lost >= 15, lost
    for side in ("user", "relay"):
        assert LOSS_TABLE not in net.run(side, "nft", "list", "tables").stdout
    print(f"\nfirst round trip {first * 1000:.0f} ms; 512 kB echoed at 5 % loss in {lossy:.2f} s, {lost} packets dropped")
