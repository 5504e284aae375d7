"""The recorder alone on a still screen: its thread's CPU while nothing changes.

Starts Xvfb (1920x1080x24), paints the test pattern once (a Tk painter, so the
screen is not trivially flat), then runs :class:`~host_client.recorder.SegmentRecorder`
in this process at 2 fps for a warm-up and a measured stretch, reading the
``recorder`` thread's CPU time from ``/proc/self/task/<tid>/stat``. No broker,
no live stream: only what recording a static screen costs. The figures say how
many segments were written, how many were encoded (the rest replay the packets
of the last encoded segment) and their mean size.

Run: ``.venv/bin/python -m bench.recorder_static [--seconds 30] [--write-docs]`` (``--write-docs``
replaces only this benchmark's section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.recording_overhead import recorder_seconds
from bench.report import machine_conditions, publish
from host_client.capture import Screen
from host_client.recorder import SegmentRecorder
from protocol.cli import number_in_range
from tests.support.screen_painter import PainterProcess
from tests.support.xvfb import XvfbServer

WARM_UP = 3.0
FPS = 2.0


def measure(display_env: dict[str, str], seconds: float) -> dict[str, float]:
    """Recorder CPU seconds, wall seconds, segments written and encoded, bytes, over ``seconds`` of a still screen."""
    os.environ["DISPLAY"] = display_env["DISPLAY"]
    with PainterProcess(display_env) as painter, tempfile.TemporaryDirectory() as spool_dir:
        painter.pattern()
        screen = Screen()
        monitor = screen.monitors()[0]
        screen.close()
        spool = Path(spool_dir)
        recorder = SegmentRecorder(spool, lambda: monitor, lambda: True, fps=FPS)
        recorder.start()
        try:
            time.sleep(WARM_UP)
            first = len(list(spool.glob("*.json")))
            # getattr: the same measurement runs on recorders from before the counter (the "before" figures).
            encoded = getattr(recorder, "segments_encoded", 0)
            wall, cpu = time.monotonic(), recorder_seconds(os.getpid())
            time.sleep(seconds)
            cpu, wall = recorder_seconds(os.getpid()) - cpu, time.monotonic() - wall
            markers = sorted(spool.glob("*.json"))[first:]
            encoded = getattr(recorder, "segments_encoded", float("nan")) - encoded
        finally:
            recorder.stop()
        size = sum(m.with_suffix(".webm").stat().st_size for m in markers)
    return {"wall": wall, "cpu": cpu, "segments": len(markers), "encoded": encoded,
            "mean_bytes": size / max(1, len(markers))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=number_in_range(float, 5, 3600, "seconds"), default=30.0,
                        help="seconds of a still screen measured after a 3 s warm-up (default 30)")
    parser.add_argument("--write-docs", action="store_true", help="replace this section's figures in docs/benchmarks.md")
    args = parser.parse_args()
    with XvfbServer.start(1920, 1080) as xvfb:
        figures = measure(xvfb.env, args.seconds)
    table = "\n".join([
        "| wall | recorder thread CPU (% of one core) | segments | encoded | mean segment size |",
        "|---|---|---|---|---|",
        f"| {figures['wall']:.0f} s | {100 * figures['cpu'] / figures['wall']:.2f} % | {figures['segments']} "
        f"| {figures['encoded']:.0f} | {figures['mean_bytes'] / 1000:.1f} kB |",
    ])
    conditions = [*machine_conditions(), f"screen: Xvfb 1920x1080x24, test pattern, still; recorder alone at {FPS:g} fps"]
    publish("recorder_static", conditions, table, write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
