"""File transfer throughput: Deskhand (both ways, through the broker) against a plain TCP socket.

Starts Xvfb, a broker on 127.0.0.1 and ``deskhand-host`` (its own process,
``--consent files.send,files.receive``); the technician side runs in this
process through :meth:`TechConsole.send_file` and :meth:`TechConsole.fetch_file`,
exactly as ``deskhand-console send`` and ``fetch`` do. Each figure is the file
size over the time from offering to the receiver's verified file.

The baseline moves the same bytes between two Python processes over one TCP
connection on 127.0.0.1: the sender reads the file in 4 MiB blocks and
``sendall``s them, the receiver writes them to a file and computes the SHA-256,
as any tool that wants to know the file arrived intact must.

Run: ``.venv/bin/python -m bench.file_transfer [--mib 256] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import machine_conditions, publish
from peer.transfers import file_sha256
from tests.support.broker import BrokerProcess
from tests.support.live_session import live_session
from tests.support.xvfb import XvfbServer

BLOCK = 4 * 1024 * 1024

_TCP_RECEIVER = """
import hashlib, socket, sys, time
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
digest = hashlib.sha256()
buffer = bytearray(4 * 1024 * 1024)
view = memoryview(buffer)
with open(sys.argv[1], "wb") as out:
    while True:
        n = conn.recv_into(buffer)
        if not n:
            break
        digest.update(view[:n])
        out.write(view[:n])
print(digest.hexdigest(), time.monotonic(), flush=True)
"""


def tcp_baseline(source: Path, destination: Path) -> tuple[float, str]:
    """Seconds to move ``source`` over TCP into ``destination``, and the receiver's SHA-256."""
    receiver = subprocess.Popen([sys.executable, "-c", _TCP_RECEIVER, str(destination)], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as conn, source.open("rb") as handle:
        while block := handle.read(BLOCK):
            conn.sendall(block)
    sha256, finished = receiver.stdout.readline().split()
    receiver.wait(30)
    return float(finished) - started, sha256


async def deskhand(display_env: dict[str, str], source: Path, work: Path) -> tuple[float, float, bool]:
    """Seconds to send ``source`` to the host and to fetch it back; whether every hash matched."""
    expected = file_sha256(source)
    with BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker:
        async with live_session(
            broker, {**display_env, "DESKHAND_DOWNLOADS": str(work / "host-downloads")},
            "--consent", "files.send,files.receive", subject="file benchmark", view=False,
        ) as live:
            await live.consented()
            started = time.monotonic()
            sent = await live.console.send_file(live.session_id, source)
            to_host = time.monotonic() - started
            started = time.monotonic()
            fetched = await live.console.fetch_file(live.session_id, str(source), work / "fetched")
            to_technician = time.monotonic() - started
    landed = next((work / "host-downloads").rglob(sent.saved_as or source.name))
    ok = sent.broker_sha256 == expected and file_sha256(landed) == expected and file_sha256(fetched) == expected
    return to_host, to_technician, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB (default 256)")
    parser.add_argument("--write-docs", action="store_true", help="replace the figures in docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not 1 <= args.mib <= 4096:
        parser.error("--mib must be between 1 and 4096")
    size = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="deskhand-bench-") as tmp, XvfbServer.start(1280, 800) as xvfb:
        work = Path(tmp)
        source = work / "payload.bin"
        with source.open("wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(1024 * 1024))
        expected = hashlib.sha256(source.read_bytes()).hexdigest()
        os.sync()  # both paths start with no dirty pages to write back: the fair and steady case
        tcp_seconds, tcp_sha256 = tcp_baseline(source, work / "tcp.bin")
        os.sync()
        to_host, to_technician, ok = asyncio.run(deskhand(xvfb.env, source, work))
    mb = size / 1e6
    slower = max(to_host, to_technician)
    lines = [
        f"deskhand to host: {mb / to_host:.0f} MB/s",
        f"deskhand to technician: {mb / to_technician:.0f} MB/s",
        f"deskhand: {mb / slower:.0f} MB/s",
        f"tcp: {mb / tcp_seconds:.0f} MB/s",
        f"ratio: {tcp_seconds / slower:.2f}",
        f"hashes: {'all match' if ok and tcp_sha256 == expected else 'MISMATCH'}",
    ]
    conditions = [
        *machine_conditions(),
        f"{args.mib} MiB of random bytes, each way, 127.0.0.1; broker, host and technician are three processes",
        "deskhand: offer -> receiver's verified file (chunks of 4 MiB, SHA-256 per chunk and per file on "
        "every side, broker spool on disk); 'deskhand' is the slower direction",
        "tcp: one connection between two Python processes, sender reads 4 MiB blocks, receiver writes and hashes",
    ]
    publish("file_transfer", conditions, "```\n" + "\n".join(lines) + "\n```", write=args.write_docs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
