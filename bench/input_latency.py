"""Technician input to host injection: latency per input, over hundreds of events.

Starts Xvfb, a broker on 127.0.0.1 with loopback ICE and ``deskhand-host`` (its
own process, ``--consent view,control``, ``--trace-input``); the technician's
:class:`~tech_console.remote_view.RemoteView` runs in this process. For every
input the bench notes ``time.monotonic()`` as it hands the message to the data
channel; the host writes ``time.monotonic()`` after pynput has injected it
(XTEST, synced). CLOCK_MONOTONIC is shared by both processes on Linux.

Inputs: pointer moves on the reliable ``input`` channel, pointer moves on the
unreliable ``pointer`` channel, and key presses (Shift, harmless on an empty
screen), sent at a steady rate.

Run: ``.venv/bin/python -m bench.input_latency [--events 600] [--rate 100] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.report import machine_conditions, percentile, publish
from protocol.permissions import Permission
from tech_console.remote_view import RemoteView
from tests.support.broker import BrokerProcess
from tests.support.live_session import live_session
from tests.support.xvfb import XvfbServer

KINDS = ("move (input channel)", "move (pointer channel)", "key press")


def send(view: RemoteView, kind: str, i: int) -> list[int]:
    """Send one input of ``kind``; the seqs the host will trace."""
    x, y = (i % 97) / 97, (i % 89) / 89
    if kind == KINDS[0]:
        return [view.move(x, y, reliable=True)]
    if kind == KINDS[1]:
        return [view.move(x, y)]
    return [view.key("ShiftLeft", "Shift", down=True), view.key("ShiftLeft", "Shift", down=False)]


async def measure(display_env: dict[str, str], events: int, rate: float, trace: Path) -> dict[str, list[float]]:
    sent: dict[int, tuple[str, float]] = {}
    with BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker:
        async with live_session(
            broker, display_env, "--consent", "view,control", "--trace-input", str(trace), subject="input benchmark"
        ) as live:
            view = live.view
            await view.wait_for_control(60)
            await view.wait_until(lambda: view.allowed(Permission.control), 30, "consent")
            await asyncio.sleep(1.0)
            interval = 1.0 / rate
            next_at = time.monotonic()
            for i in range(events):
                kind = KINDS[i % len(KINDS)]
                for seq in send(view, kind, i):
                    sent[seq] = (kind, time.monotonic())
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.sleep(2.0)
    by_kind: dict[str, list[float]] = {k: [] for k in KINDS}
    for line in trace.read_text().splitlines():
        seq_text, at_text = line.split()
        kind, sent_at = sent[int(seq_text)]
        by_kind[kind].append((float(at_text) - sent_at) * 1000)
    return by_kind


def report(by_kind: dict[str, list[float]], events: int) -> str:
    rows = ["| inputs | applied | p50 | p99 | max |", "|---|---|---|---|---|"]
    everything = [v for values in by_kind.values() for v in values]
    for name, values in [*by_kind.items(), ("all", everything)]:
        if values:
            rows.append(
                f"| {name} | {len(values)} | {percentile(values, 50):.1f} ms | "
                f"{percentile(values, 99):.1f} ms | {max(values):.1f} ms |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=600, help="inputs to send, at least 500 (default 600)")
    parser.add_argument("--rate", type=float, default=100.0, help="inputs per second (default 100)")
    parser.add_argument("--write-docs", action="store_true", help="replace the figures in docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.events < 1 or not 0 < args.rate <= 1000:
        parser.error("--events must be positive and --rate between 0 and 1000")
    with tempfile.TemporaryDirectory() as tmp, XvfbServer.start(1920, 1080) as xvfb:
        by_kind = asyncio.run(measure(xvfb.env, args.events, args.rate, Path(tmp) / "trace"))
    conditions = [
        *machine_conditions(),
        f"{args.events} inputs at {args.rate:g}/s over a WebRTC data channel on 127.0.0.1; host injects with "
        "pynput/XTEST on Xvfb 1920x1080 while streaming the screen at 30 fps",
        "latency: technician hands the message to the data channel -> host has injected it",
    ]
    publish("input_latency", conditions, report(by_kind, args.events), write=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
