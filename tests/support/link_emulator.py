"""A link emulator for the netns rig: rate with ``tc tbf``, delay, jitter and loss with a user-space UDP relay.

This kernel has no netem, so the two halves of a bad link come from two places:

* **Rate**: :func:`shape` puts a token bucket filter on one end of an edge's veth. The
  edge's own end shapes what it sends (the user's uplink), the relay's end what it
  receives (the downlink)::

      shape(net, "user", "up", kbit=2500)      # tc qdisc replace dev u0 root tbf rate 2500kbit ...
      unshape(net, "user", "up")

* **Delay, jitter, loss**: :class:`ImpairedRelay` runs this module as a UDP relay in the
  relay namespace, in front of coturn's UDP port. A peer whose TURN URL names the relay's
  port (``turn:198.18.0.1:3479?transport=udp``) reaches coturn only through it; the
  packets of clients in the impaired prefixes (the user's network, say) are delayed,
  jittered and dropped both ways, by :class:`Impairment`, the pure part::

      with ImpairedRelay.start(net, Impairment(delay=0.075, loss=0.02), impaired=["198.18.1.0/24"]) as relay:
          env = {**coturn.broker_env(), "DESKHAND_TURN_URLS": relay.url}

Only TURN over UDP passes the relay; a peer on coturn's TCP or TLS leg is not impaired.
Packets keep their order (jitter never lets one overtake another), as on one path.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import random
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, cast

from tests.support.netns import PUBLIC_IP, Edge, NetTopology, Side
from tests.support.processes import end_process, wait_until_ready

Direction = Literal["up", "down"]
"""``up``: what the edge sends (shaped at its own end); ``down``: what it receives (shaped at the relay's end)."""

RELAY_PORT = 3479
"""The impairing relay's UDP port on 198.18.0.1 (coturn's own is 3478)."""


# --- rate ---------------------------------------------------------------------------------


def tbf_arguments(kbit: int, burst_bytes: int | None = None, latency_ms: int = 200) -> list[str]:
    """``tc``'s arguments after ``root`` for a rate of ``kbit`` kbit/s.

    The burst defaults to 4 ms of the rate, at least two full-size packets (tbf refuses a
    bucket smaller than one packet), so a link lets no more than that through at once;
    ``latency`` bounds the queue (packets that would wait longer are dropped), as a
    bottleneck's buffer does.
    """
    if not 8 <= kbit <= 10_000_000:
        raise ValueError(f"a rate is 8 kbit/s to 10 Gbit/s, not {kbit} kbit/s")
    if not 1 <= latency_ms <= 10_000:
        raise ValueError(f"a queue's latency is 1 ms to 10 s, not {latency_ms} ms")
    burst = burst_bytes if burst_bytes is not None else max(3200, kbit * 1000 // 8 * 4 // 1000)
    return ["tbf", "rate", f"{kbit}kbit", "burst", str(burst), "latency", f"{latency_ms}ms"]


def _shaped_end(net: NetTopology, edge: Edge, direction: Direction) -> tuple[Side, str]:
    """(side, device) whose egress carries ``direction`` of ``edge``."""
    veth = net.veths[edge]
    return (edge, veth.edge) if direction == "up" else ("relay", veth.relay)


def shape(net: NetTopology, edge: Edge, direction: Direction, kbit: int, *, burst_bytes: int | None = None,
          latency_ms: int = 200) -> None:
    """Limit ``direction`` of ``edge``'s link to ``kbit`` kbit/s (replacing any earlier limit)."""
    side, device = _shaped_end(net, edge, direction)
    net.run(side, "tc", "qdisc", "replace", "dev", device, "root", *tbf_arguments(kbit, burst_bytes, latency_ms),
            check=True)


def unshape(net: NetTopology, edge: Edge, direction: Direction) -> None:
    """Take the limit of ``direction`` of ``edge`` away again (none there is fine)."""
    side, device = _shaped_end(net, edge, direction)
    net.run(side, "tc", "qdisc", "del", "dev", device, "root")


# --- delay, jitter, loss: the judgement -------------------------------------------------


@dataclass(frozen=True)
class Impairment:
    """What a path does to each packet: one-way ``delay`` and ``jitter`` (seconds), ``loss`` (0-1)."""

    delay: float = 0.0
    jitter: float = 0.0
    """Each packet's delay is ``delay`` plus or minus up to this much, uniformly."""
    loss: float = 0.0
    """The chance that a packet is dropped, each packet on its own."""

    def __post_init__(self) -> None:
        if not 0 <= self.delay <= 10:
            raise ValueError(f"a delay is 0 to 10 s, not {self.delay}")
        if not 0 <= self.jitter <= self.delay:
            raise ValueError(f"jitter is 0 up to the delay ({self.delay} s), not {self.jitter}")
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss is a chance from 0 to below 1, not {self.loss}")


class ImpairedPath:
    """One direction of one client's packets through an :class:`Impairment`: when each leaves, in order."""

    def __init__(self, impairment: Impairment, rng: random.Random) -> None:
        self.impairment = impairment
        self._rng = rng
        self._last = float("-inf")

    def departure(self, now: float) -> float | None:
        """When a packet that arrived at ``now`` leaves, or None when it is lost.

        Never before the packet sent ahead of it: jitter changes the gaps, not the order. So
        packets closer together than the jitter are often held behind a later-drawn one, and
        their mean delay drifts from ``delay`` towards ``delay + jitter``.
        """
        impairment = self.impairment
        if impairment.loss and self._rng.random() < impairment.loss:
            return None
        spread = self._rng.uniform(-impairment.jitter, impairment.jitter) if impairment.jitter else 0.0
        self._last = max(self._last, now + impairment.delay + spread)
        return self._last


# --- the relay ------------------------------------------------------------------------------


class _Upstream(asyncio.DatagramProtocol):
    """One client's socket towards coturn: what coturn answers goes back to that client."""

    def __init__(self, relay: _Relay, client: tuple[str, int]) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if (addr[0], addr[1]) == self.relay.upstream:  # nothing but coturn's answers reaches the client
            self.relay.to_client(self.client, data)


class _Relay(asyncio.DatagramProtocol):
    """Listens for clients; each gets its own upstream socket, so coturn sees one address per client."""

    def __init__(self, upstream: tuple[str, int], impairment: Impairment, impaired: Sequence[str], seed: int) -> None:
        self.upstream = upstream
        self.impairment = impairment
        self.impaired = [ipaddress.ip_network(prefix) for prefix in impaired]
        self.rng = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[tuple[str, int], tuple[_Upstream, ImpairedPath, ImpairedPath]] = {}
        self.opening: dict[tuple[str, int], list[bytes]] = {}
        """Clients whose upstream socket is being opened, and what they sent meanwhile."""
        self.queues: dict[ImpairedPath, deque[tuple[float, Callable[[], object]]]] = {}
        """Per path, what waits to leave and when, in order."""
        self.pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        client = (addr[0], addr[1])
        known = self.clients.get(client)
        if known is not None:
            upstream, path_up, _ = known
            self._send_later(path_up, lambda: upstream.transport and upstream.transport.sendto(data, self.upstream))
        elif client in self.opening:  # its socket is being opened: sent, in order, once it is
            self.opening[client].append(data)
        else:
            self.opening[client] = [data]
            task = asyncio.get_running_loop().create_task(self._open(client))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _open(self, client: tuple[str, int]) -> None:
        """Open ``client``'s upstream socket, then pass on what it sent meanwhile."""
        loop = asyncio.get_running_loop()
        local = self.transport.get_extra_info("sockname")[0] if self.transport else "0.0.0.0"
        _, upstream = await loop.create_datagram_endpoint(lambda: _Upstream(self, client), local_addr=(local, 0))
        impaired = any(ipaddress.ip_address(client[0]) in network for network in self.impaired)
        impairment = self.impairment if impaired else Impairment()
        self.clients[client] = (upstream, ImpairedPath(impairment, self.rng), ImpairedPath(impairment, self.rng))
        for data in self.opening.pop(client):
            self.datagram_received(data, client)

    def to_client(self, client: tuple[str, int], data: bytes) -> None:
        _, _, path_down = self.clients[client]
        self._send_later(path_down, lambda: self.transport and self.transport.sendto(data, client))

    def _send_later(self, path: ImpairedPath, send: Callable[[], object]) -> None:
        """Send when ``path`` says, after every packet it let through before (a FIFO per path:
        asyncio's timers do not keep the order of callbacks due at the same moment)."""
        loop = asyncio.get_running_loop()
        leaves = path.departure(loop.time())
        if leaves is None:
            return
        queue = self.queues.setdefault(path, deque())
        queue.append((leaves, send))
        if len(queue) == 1:
            loop.call_at(leaves, self._drain, path)

    def _drain(self, path: ImpairedPath) -> None:
        loop = asyncio.get_running_loop()
        queue = self.queues[path]
        while queue and queue[0][0] <= loop.time():
            queue.popleft()[1]()
        if queue:
            loop.call_at(queue[0][0], self._drain, path)


async def serve(listen: tuple[str, int], upstream: tuple[str, int], impairment: Impairment, impaired: Sequence[str],
                seed: int) -> None:
    """Relay UDP from ``listen`` to ``upstream`` and back until cancelled; print ``ready`` once listening."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Relay(upstream, impairment, impaired, seed),
                                                       local_addr=listen)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


def host_port(text: str) -> tuple[str, int]:
    """A command line's HOST:PORT (the relays' ``--listen`` and ``--upstream``)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"an address is HOST:PORT, not {text!r}")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A UDP relay that delays, jitters and drops the packets of some clients.")
    parser.add_argument("--listen", type=host_port, required=True)
    parser.add_argument("--upstream", type=host_port, required=True)
    parser.add_argument("--impaired", action="append", default=[], help="a client prefix to impair (repeatable)")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    try:
        impairment = Impairment(options.delay_ms / 1000, options.jitter_ms / 1000, options.loss)
        for prefix in options.impaired:
            ipaddress.ip_network(prefix)
    except ValueError as bad:
        parser.error(str(bad))
    asyncio.run(serve(options.listen, options.upstream, impairment, options.impaired, options.seed))
    return 0


# --- the relay as the tests start it --------------------------------------------------------


@dataclass(frozen=True)
class ImpairedRelay:
    """The relay running in the relay namespace; ``url`` is the TURN URL that goes through it."""

    port: int
    impairment: Impairment

    @property
    def url(self) -> str:
        return f"turn:{PUBLIC_IP}:{self.port}?transport=udp"

    @classmethod
    @contextmanager
    def start(cls, net: NetTopology, impairment: Impairment, impaired: Sequence[str], *, port: int = RELAY_PORT,
              upstream_port: int = 3478, seed: int = 1) -> Iterator[ImpairedRelay]:
        """Run the relay for the ``with`` block, in front of ``upstream_port`` (coturn's) on 198.18.0.1."""
        argv = [sys.executable, "-m", "tests.support.link_emulator", "--listen", f"{PUBLIC_IP}:{port}",
                "--upstream", f"{PUBLIC_IP}:{upstream_port}", "--delay-ms", str(impairment.delay * 1000),
                "--jitter-ms", str(impairment.jitter * 1000), "--loss", str(impairment.loss), "--seed", str(seed)]
        for prefix in impaired:
            argv += ["--impaired", prefix]
        process = net.popen("relay", argv, stdout=subprocess.PIPE, text=True)
        try:
            wait_until_ready(process, "the impairing relay")
            yield cls(port, impairment)
        finally:
            end_process(process)


if __name__ == "__main__":
    sys.exit(main())
