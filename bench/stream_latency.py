"""Screen change to technician frame: latency and delivered frame rate.

Starts Xvfb (1920x1080x24), a broker on 127.0.0.1 with loopback ICE, a screen
painter, and ``deskhand-host`` as a separate process; the technician's side
(:class:`tech_console.remote_view.RemoteView`) runs in this process and timestamps
every decoded frame.

* latency: the painter fills the screen with a new colour and reports when the X
  server has drawn it; the receiver reports when the first frame showing that
  colour at the screen's centre was decoded. Both are ``time.monotonic()``
  (CLOCK_MONOTONIC, shared by all processes on Linux).
* delivered fps under continuous change: the painter changes colour as fast as
  it can for a while; frames decoded per second at the receiver.

Run: ``.venv/bin/python -m bench.stream_latency [--changes 60] [--write-docs]``.
Never part of the pass/fail test run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from dataclasses import dataclass

from bench.frame_probe import ColourProbe
from bench.report import DOCS, ROOT, machine_conditions, percentile, publish
from tests.support.broker import BrokerProcess
from tests.support.live_session import live_session
from tests.support.screen_painter import PainterProcess
from tests.support.xvfb import XvfbServer

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


@dataclass
class Results:
    latencies_ms: list[float]
    missed: int
    continuous_fps: float
    painted_per_second: float
    static_fps: float
    fps_setting: float
    duration: float

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def measure(display_env: dict[str, str], changes: int, continuous_seconds: float, fps: float) -> Results:
    with BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker, PainterProcess(display_env) as painter:
        painter.fill((0, 0, 0))
        probe = ColourProbe(painter.width // 2, painter.height // 2)
        async with live_session(
            broker, display_env, "--fps", str(fps), "--consent", "view", subject="benchmark", on_frame=probe.on_frame
        ) as live:
            view = live.view
            await view.wait_for_frame(60)
            await asyncio.sleep(2.0)  # let the encoder's bitrate settle

            t_static = time.monotonic()
            frames_static = view.frames_received
            await asyncio.sleep(3.0)
            static_fps = (view.frames_received - frames_static) / (time.monotonic() - t_static)

            latencies, missed = [], 0
            previous = (0, 0, 0)
            for _ in range(changes):
                colour = random.choice([c for c in PALETTE if c != previous])
                previous = colour
                probe.expect(colour)
                changed_at = await asyncio.to_thread(painter.fill, colour)
                try:
                    seen_at = await probe.seen(timeout=5.0)
                    latencies.append((seen_at - changed_at) * 1000)
                except asyncio.TimeoutError:
                    missed += 1
                await asyncio.sleep(random.uniform(0.15, 0.35))

            stop = threading.Event()
            painted = [0]

            def keep_painting() -> None:
                i = 0
                while not stop.is_set():
                    painter.fill(PALETTE[i % len(PALETTE)])
                    painted[0] += 1
                    i += 1

            worker = threading.Thread(target=keep_painting, daemon=True)
            frames_before, t0 = view.frames_received, time.monotonic()
            worker.start()
            await asyncio.sleep(continuous_seconds)
            stop.set()
            elapsed = time.monotonic() - t0
            frames = view.frames_received - frames_before
            await asyncio.to_thread(worker.join, 5)
        return Results(
            latencies_ms=latencies, missed=missed, continuous_fps=frames / elapsed,
            painted_per_second=painted[0] / elapsed, static_fps=static_fps, fps_setting=fps,
            duration=elapsed,
        )


def conditions() -> list[str]:
    return [
        *machine_conditions(),
        "screen: Xvfb 1920x1080x24; pipeline: mss grab in recv() -> aiortc default VP8 -> loopback -> aiortc decode",
        "host and receiver in separate processes; broker a third; all on 127.0.0.1",
    ]


def report(results: Results) -> str:
    lat = results.latencies_ms
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| change-to-received latency p50 | {results.percentile(50):.0f} ms |",
        f"| change-to-received latency p95 | {results.percentile(95):.0f} ms |",
        f"| latency min / max | {min(lat):.0f} / {max(lat):.0f} ms |",
        f"| changes measured (missed within 5 s) | {len(lat)} ({results.missed}) |",
        f"| delivered fps, continuous change ({results.duration:.0f} s, host --fps {results.fps_setting:g}) | {results.continuous_fps:.1f} |",
        f"| screen changes painted per second meanwhile | {results.painted_per_second:.0f} |",
        f"| delivered fps, static screen | {results.static_fps:.1f} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=60, help="screen changes to time (at least 50 for p95; default 60)")
    parser.add_argument("--continuous", type=float, default=10.0, help="seconds of continuous change (default 10)")
    parser.add_argument("--fps", type=float, default=30.0, help="host frame rate cap (default 30)")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the figures in {DOCS.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.changes < 1 or args.continuous <= 0:
        parser.error("--changes must be positive and --continuous above 0")
    with XvfbServer.start(1920, 1080) as xvfb:
        results = asyncio.run(measure(xvfb.env, args.changes, args.continuous, args.fps))
    publish("stream_latency", conditions(), report(results), write=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
