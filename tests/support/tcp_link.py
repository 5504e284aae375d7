"""The link emulator's TCP half: a delaying TCP relay in the relay namespace, and TCP loss with nftables.

:mod:`tests.support.link_emulator` shapes the user's link with tbf (rate, both protocols)
and impairs TURN's UDP with a user-space relay. A TCP stream (VNC, say) needs its own:

* **Delay**: :class:`DelayedTcpRelay` runs this module as a TCP relay in the relay
  namespace; what the technician sends to 198.18.0.1:``port`` goes on to the user's server
  and back, each chunk held for the one-way delay in each direction, in order::

      with DelayedTcpRelay.start(net, ("198.18.1.2", 5900), delay=0.075) as relay:
          connect(PUBLIC_IP, relay.port)

  The relay ends the TCP connection (a split connection, like a performance-enhancing
  proxy): the server's TCP sees the user's link, its rate and loss, but not the delay, so
  its congestion window and loss recovery are those of a short path. Request/response
  round trips of the protocol on top (RFB's update requests) do see the whole delay.

* **Loss**: user-space TCP cannot lose a segment faithfully, but the kernel can:
  :func:`tcp_loss` drops each packet of a TCP port with a given chance, on arrival, at both
  ends of the user's link (nftables ``numgen random``; this kernel has no netem). The
  sender never learns of the drop but by its missing acknowledgement, as on a real link. The
  link's veth ends send one segment per packet meanwhile (``gso_max_segs 1``): with
  segmentation offload one "packet" on a veth is up to 64 kB, dozens of the wire's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.link_emulator import ImpairedPath, Impairment, host_port
from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.processes import end_process, wait_until_ready

CHUNK = 65536
"""The most one read takes off a socket."""


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it came, in order."""
    loop = asyncio.get_running_loop()
    path = ImpairedPath(Impairment(delay=delay), random.Random())  # no jitter, no loss: nothing is drawn
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            leaves, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, leaves - loop.time()))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(CHUNK)
            leaves = path.departure(loop.time())
            assert leaves is not None  # no loss: every chunk leaves
            queue.put_nowait((leaves, data))
            if not data:
                break
        await sender
    finally:
        sender.cancel()


async def _relay_one(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                     upstream: tuple[str, int], delay: float) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*upstream)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(_pump(client_reader, server_writer, delay), _pump(server_reader, client_writer, delay))
    except (ConnectionError, OSError):
        pass  # one side went away: the other follows
    finally:
        for writer in (client_writer, server_writer):
            writer.close()


async def serve(listen: tuple[str, int], upstream: tuple[str, int], delay: float) -> None:
    """Relay TCP from ``listen`` to ``upstream`` with ``delay`` each way, until cancelled; print ``ready``."""
    server = await asyncio.start_server(lambda r, w: _relay_one(r, w, upstream, delay), *listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A TCP relay that holds every chunk for a delay, each way.")
    parser.add_argument("--listen", type=host_port, required=True)
    parser.add_argument("--upstream", type=host_port, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    options = parser.parse_args(argv)
    try:
        Impairment(delay=options.delay_ms / 1000)
    except ValueError as bad:
        parser.error(str(bad))
    asyncio.run(serve(options.listen, options.upstream, options.delay_ms / 1000))
    return 0


@dataclass(frozen=True)
class DelayedTcpRelay:
    """The relay running in the relay namespace: connect to ``PUBLIC_IP:port`` to reach ``upstream``."""

    port: int
    upstream: tuple[str, int]
    delay: float

    @classmethod
    @contextmanager
    def start(cls, net: NetTopology, upstream: tuple[str, int], delay: float, *, port: int = 5999) -> Iterator[DelayedTcpRelay]:
        """Run the relay for the ``with`` block, listening on 198.18.0.1:``port``."""
        Impairment(delay=delay)  # refuses an impossible delay here, not in the child
        argv = [sys.executable, "-m", "tests.support.tcp_link", "--listen", f"{PUBLIC_IP}:{port}",
                "--upstream", f"{upstream[0]}:{upstream[1]}", "--delay-ms", str(delay * 1000)]
        process = net.popen("relay", argv, stdout=subprocess.PIPE, text=True)
        try:
            wait_until_ready(process, "the TCP relay")
            yield cls(port, upstream, delay)
        finally:
            end_process(process)


# --- loss ------------------------------------------------------------------------------------


class NftablesMissing(RuntimeError):
    """``nft`` is not installed; TCP loss cannot be emulated (the message names the package)."""


LOSS_TABLE = "deskhand_tcp_loss"
GSO_MAX_SEGS = 65535
"""A veth's default limit of segments in one offloaded packet (put back after the loss)."""


def loss_ruleset(port: int, loss: float, *, server_side: bool) -> str:
    """The nftables ruleset that drops arriving packets of TCP ``port`` with chance ``loss`` (pure).

    On the server's side it drops what comes to the port, on the other what comes from it:
    each end loses what the other sent, after it crossed the link.
    """
    if not 0 < loss < 1:
        raise ValueError(f"loss is a chance above 0 and below 1, not {loss}")
    if not 0 < port < 65536:
        raise ValueError(f"a port is 1 to 65535, not {port}")
    per_million = round(loss * 1_000_000)
    match = f"tcp dport {port}" if server_side else f"tcp sport {port}"
    return (f"table inet {LOSS_TABLE} {{\n  chain arriving {{\n    type filter hook input priority 0;\n"
            f"    {match} numgen random mod 1000000 < {per_million} counter drop\n  }}\n}}\n")


def dropped(net: NetTopology) -> int:
    """Packets :func:`tcp_loss` has dropped so far at both ends (its rules count them)."""
    total = 0
    for side in ("user", "relay"):
        listed = net.run(side, "nft", "list", "table", "inet", LOSS_TABLE).stdout
        total += sum(int(n) for n in re.findall(r"counter packets (\d+)", listed))
    return total


@contextmanager
def tcp_loss(net: NetTopology, port: int, loss: float) -> Iterator[None]:
    """For the ``with`` block, lose ``loss`` of the packets of a server on TCP ``port`` in the user
    namespace, both ways, on arrival (the user's end and the relay's end of the user's link)."""
    if shutil.which("nft") is None:
        raise NftablesMissing("TCP loss needs nftables' nft: apt-get install nftables")
    sides = (("user", True), ("relay", False))
    veth = net.veths["user"]
    ends = (("user", veth.edge), ("relay", veth.relay))
    try:
        # A veth hands TCP over in segmentation-offload chunks of up to 64 kB: one per MTU, or a
        # dropped "packet" would be dozens of the wire's.
        for side, device in ends:
            net.run(side, "ip", "link", "set", "dev", device, "gso_max_segs", "1", check=True)
        for side, server_side in sides:
            done = subprocess.run([*net.wrap(side), "nft", "-f", "-"], input=loss_ruleset(port, loss, server_side=server_side),
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"nft refused the loss rules in {side}: {done.stderr.strip()}")
        yield
    finally:
        for side, _ in sides:
            net.run(side, "nft", "delete", "table", "inet", LOSS_TABLE)
        for side, device in ends:
            net.run(side, "ip", "link", "set", "dev", device, "gso_max_segs", str(GSO_MAX_SEGS))


if __name__ == "__main__":
    sys.exit(main())
