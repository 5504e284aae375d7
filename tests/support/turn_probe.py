"""What a peer in a namespace can reach: a TURN allocation and its permissions, or plain UDP.

Run inside a namespace of :class:`tests.support.netns.NetTopology` (``net.wrap(side)``
is the prefix), each command prints one JSON line on stdout:

    python -m tests.support.turn_probe allocate --server 198.18.0.1:3478 --username U --password P \
        [--transport udp|tcp|tls --ca-file F] [--peer 198.18.0.1:50000]...
        -> {"allocate": "ok", "relayed": "198.18.0.1:49160", "binds": {"198.18.0.1:50000": "ok"}}
           {"allocate": 401, "reason": "Unauthorized", "binds": {}}
    python -m tests.support.turn_probe echo --bind 198.18.9.1:7000
        -> {"echo": "198.18.9.1:7000"}, then echoes every datagram until killed
    python -m tests.support.turn_probe reach --to 198.18.2.2:7000
        -> {"reached": false, "error": "[Errno 101] Network is unreachable"}

From a test, :func:`probe` runs one command in a namespace and returns its JSON, and
:func:`start_echo` leaves an echo server running there.

``allocate`` is aioice's own TURN client (the one aiortc peers use): an Allocate, then
one ChannelBind per ``--peer`` (a ChannelBind installs the permission, so a denied
peer gets coturn's 403). A refused request is reported by its STUN error code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from aioice import stun
from aioice.turn import TurnClientMixin, TurnClientTcpProtocol, TurnClientUdpProtocol

if TYPE_CHECKING:
    from tests.support.netns import NetTopology, Side

MODULE = "tests.support.turn_probe"
TIMEOUT = 10.0
"""Seconds a probe waits for an answer before reporting ``"timeout"``."""


def address(text: str) -> tuple[str, int]:
    """``"198.18.0.1:3478"`` -> ``("198.18.0.1", 3478)``."""
    host, _, port = text.rpartition(":")
    return host, int(port)


def outcome(exc: BaseException) -> dict[str, Any]:
    """How a TURN request ended, as the probe reports it: the STUN error code and reason when refused."""
    if isinstance(exc, stun.TransactionFailed):
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, ""))
        return {"code": int(code), "reason": str(reason)}
    if isinstance(exc, stun.TransactionTimeout | TimeoutError):
        return {"code": "timeout", "reason": str(exc)}
    return {"code": "error", "reason": f"{type(exc).__name__}: {exc}"}


async def allocate(args: argparse.Namespace) -> dict[str, Any]:
    """Allocate on ``args.server`` and bind a channel to each ``args.peer``; the report."""
    loop = asyncio.get_running_loop()
    server = address(args.server)
    make = {"username": args.username, "password": args.password, "lifetime": 600, "channel_refresh_time": 500}
    protocol: TurnClientMixin
    transport: asyncio.BaseTransport
    if args.transport == "udp":
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(server, **make), remote_addr=server
        )
    else:
        context = ssl.create_default_context(cafile=args.ca_file) if args.transport == "tls" else None
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: TurnClientTcpProtocol(server, **make), *server, ssl=context), TIMEOUT
        )
    report: dict[str, Any] = {"binds": {}}
    try:
        try:
            relayed = await asyncio.wait_for(protocol.connect(), TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - every failure is the probe's answer
            refused = outcome(exc)
            return {**report, "allocate": refused["code"], "reason": refused["reason"]}
        report.update(allocate="ok", relayed=f"{relayed[0]}:{relayed[1]}")
        for number, peer in enumerate(args.peer):
            try:
                await asyncio.wait_for(protocol.channel_bind(0x4000 + number, address(peer)), TIMEOUT)
                report["binds"][peer] = "ok"
            except Exception as exc:  # noqa: BLE001 - every failure is the probe's answer
                report["binds"][peer] = outcome(exc)["code"]
        await asyncio.wait_for(protocol.delete(), TIMEOUT)
        return report
    finally:
        transport.close()


async def echo(args: argparse.Namespace) -> None:
    """Echo every UDP datagram sent to ``args.bind`` until killed."""

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, addr)

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=address(args.bind))
    print(json.dumps({"echo": args.bind}), flush=True)
    await asyncio.Event().wait()


def reach(args: argparse.Namespace) -> dict[str, Any]:
    """Send one datagram to ``args.to`` and wait for its echo."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(args.wait)
        try:
            sock.sendto(b"deskhand probe", address(args.to))
            data, _ = sock.recvfrom(2048)
        except OSError as exc:
            return {"reached": False, "error": str(exc) or type(exc).__name__}
        return {"reached": data == b"deskhand probe"}


def probe(net: NetTopology, side: Side, *args: str) -> dict[str, Any]:
    """Run ``python -m tests.support.turn_probe *args`` inside ``side``; the JSON it printed."""
    done = net.run(side, sys.executable, "-m", MODULE, *args, timeout=60)
    if done.returncode != 0 or not done.stdout.strip():
        raise AssertionError(f"the probe {args} in {side} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_echo(net: NetTopology, side: Side, bind: str) -> subprocess.Popen[str]:
    """A UDP echo server on ``bind`` inside ``side``, listening on return; ended with the topology at the latest."""
    server = net.popen(side, [sys.executable, "-m", MODULE, "echo", "--bind", bind],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("{"):
        server.kill()
        raise AssertionError(f"the echo server on {bind} in {side} did not start: {line}{server.communicate()[1]}")
    return server


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.turn_probe")
    commands = parser.add_subparsers(dest="command", required=True)
    allocating = commands.add_parser("allocate", help="allocate on a TURN server and bind channels to peers")
    allocating.add_argument("--server", required=True)
    allocating.add_argument("--username", required=True)
    allocating.add_argument("--password", required=True)
    allocating.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    allocating.add_argument("--ca-file", help="the CA that signed the server's certificate (tls)")
    allocating.add_argument("--peer", action="append", default=[], help="IP:PORT to bind a channel to")
    echoing = commands.add_parser("echo", help="a UDP echo server")
    echoing.add_argument("--bind", required=True)
    reaching = commands.add_parser("reach", help="one UDP datagram to an echo server")
    reaching.add_argument("--to", required=True)
    reaching.add_argument("--wait", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.command == "allocate":
        print(json.dumps(asyncio.run(allocate(args))), flush=True)
    elif args.command == "echo":
        asyncio.run(echo(args))
    else:
        print(json.dumps(reach(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
