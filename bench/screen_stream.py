"""Screen streaming, pipeline against pipeline, on one scripted desktop workload.

    .venv/bin/python -m bench.screen_stream [--static-seconds 60] [--phase-seconds 10] [--only NAMES] [--write-docs]

Starts Xvfb (1920x1080x24), the workload (:mod:`bench.workload`) and a broker
with loopback ICE once; then, for each pipeline in turn (:data:`PIPELINES`):
opens it, resets the workload, waits 3 s, and runs the phases typing,
scrolling, moving (``--phase-seconds`` each) and static (``--static-seconds``).
Every phase but static paints a latency mark every 250 ms +- 50 ms. Per phase the
host's CPU time (:mod:`bench.cpu`, the host process with its threads and
children) and the receiver's byte count are read at both ends. At the end of
static the receiver's newest frame is compared with an mss grab of the screen
(PSNR and SSIM of the luma). Figures and tables: :mod:`bench.stream_figures`.

A pipeline that cannot run fails the whole command: a comparison with a gap
would read as a result. ``--only`` picks pipelines on purpose.
Never part of the pass/fail test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.cpu import CpuSample
from bench.report import DOCS, ROOT, machine_conditions, publish
from bench.stream_figures import (
    DESKHAND_AIORTC,
    DESKHAND_CHROMIUM,
    NAIVE_AIORTC,
    NAIVE_CHROMIUM,
    X11VNC,
    PhaseRun,
    PipelineFigures,
    PipelineRun,
    comparison_table,
    figures,
    luma,
    pipeline_table,
    psnr,
    ssim,
    targets_table,
)
from bench.stream_receiver import StreamReceiver
from bench.workload import TICK_RATE, TYPING_RATE, WorkloadProcess
from tests.support.broker import BrokerProcess
from tests.support.xvfb import XvfbServer

WIDTH, HEIGHT = 1920, 1080
WARM_UP = 3.0
"""Seconds between the reset and the first phase (the stream settles after the reset's big change)."""
FIRST_FRAME_TIMEOUT = 60.0

Opener = Callable[[BrokerProcess, dict[str, str]], contextlib.AbstractAsyncContextManager[tuple[Any, int]]]


@dataclass(frozen=True)
class Pipeline:
    """A way of streaming the screen: ``key`` for ``--only``, ``name`` for the report."""

    key: str
    name: str
    open: Opener
    description: str


def _aiortc(host_module: str, name: str, naive: bool) -> Opener:
    def open_(broker: BrokerProcess, env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[tuple[Any, int]]:
        from bench.aiortc_receiver import aiortc_receiver

        return aiortc_receiver(broker, env, WIDTH, HEIGHT, host_module=host_module, name=name, naive_receiver=naive)

    return open_


def _vnc(broker: BrokerProcess, env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[tuple[Any, int]]:
    module = importlib.import_module("bench.vnc_receiver")  # late: it needs x11vnc and a VNC client library
    return module.vnc_receiver(env, WIDTH, HEIGHT, name=X11VNC)


def _chromium(host_module: str, name: str) -> Opener:
    def open_(broker: BrokerProcess, env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[tuple[Any, int]]:
        module = importlib.import_module("bench.chromium_receiver")  # late: it needs Playwright
        return module.chromium_receiver(broker, env, WIDTH, HEIGHT, host_module=host_module, name=name)

    return open_


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline("deskhand-aiortc", DESKHAND_AIORTC, _aiortc("host_client.cli", DESKHAND_AIORTC, False),
             "deskhand-host as shipped -> the Python console's RemoteView (aiortc) in the bench process"),
    Pipeline("naive-aiortc", NAIVE_AIORTC, _aiortc("bench.naive_host", NAIVE_AIORTC, True),
             "bench/naive_host.py: deskhand-host with a full-screen mss grab + from_ndarray every 1/30 s, "
             "aiortc's default VP8 and encoder, no Deskhand aiortc hooks on either side -> RemoteView"),
    Pipeline("x11vnc", X11VNC, _vnc, "Debian's x11vnc on the display -> bench/vnc_receiver.py (Python RFB client)"),
    Pipeline("deskhand-chromium", DESKHAND_CHROMIUM, _chromium("host_client.cli", DESKHAND_CHROMIUM),
             "deskhand-host as shipped -> the browser console in headless Chromium (bench/chromium_receiver.py)"),
    Pipeline("naive-chromium", NAIVE_CHROMIUM, _chromium("bench.naive_host", NAIVE_CHROMIUM),
             "bench/naive_host.py -> the browser console in headless Chromium (the page is the shipped one)"),
)


async def _frames(receiver: StreamReceiver) -> list[Any]:
    """The receiver's frames so far (a browser receiver is asked to hand over what its page saw first)."""
    flush = getattr(receiver, "flush", None)
    if flush is not None:
        await flush()
    return list(receiver.frames)


async def _wait_for_frames(receiver: StreamReceiver, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await _frames(receiver):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{receiver.name}: no frame within {timeout:g} s")
        await asyncio.sleep(0.2)


def grab_screen(display: str) -> np.ndarray:
    """The source screen as (h, w, 3) RGB, grabbed with mss."""
    import mss

    with (getattr(mss, "MSS", None) or mss.mss)(display=display) as grabber:
        shot = grabber.grab(grabber.monitors[1])
        return np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)[..., 2::-1]


def _sharpness(received: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    a, b = luma(received), luma(source)
    return psnr(a, b), ssim(a, b)


async def run_pipeline(
    pipeline: Pipeline, broker: BrokerProcess, xvfb: XvfbServer, workload: WorkloadProcess,
    plan: Sequence[tuple[str, float]],
) -> PipelineRun:
    """Open ``pipeline``, run the phases of ``plan`` through it, and return what was recorded."""
    print(f"== {pipeline.name}: starting", flush=True)
    async with pipeline.open(broker, xvfb.env) as (receiver, host_pid):
        await _wait_for_frames(receiver, FIRST_FRAME_TIMEOUT)
        await asyncio.to_thread(workload.reset)
        await asyncio.sleep(WARM_UP)
        phases: list[PhaseRun] = []
        for name, seconds in plan:
            cpu_start, bytes_start = CpuSample.take(host_pid), await receiver.bytes_received()
            result = await asyncio.to_thread(workload.phase, name, seconds)
            cpu_end, bytes_end = CpuSample.take(host_pid), await receiver.bytes_received()
            phases.append(PhaseRun(result, (cpu_start, cpu_end), (bytes_start, bytes_end)))
            print(f"   {name}: {result.ticks} ticks, {len(result.marks)} marks", flush=True)
        source = await asyncio.to_thread(grab_screen, xvfb.display)
        received = await receiver.latest_rgb()
        frames = await _frames(receiver)
    sharp_psnr, sharp_ssim = await asyncio.to_thread(_sharpness, received, source)
    return PipelineRun(pipeline.name, receiver.wall_clock, frames, phases, sharp_psnr, sharp_ssim)


async def measure(
    xvfb: XvfbServer, workload: WorkloadProcess, pipelines: Sequence[Pipeline], plan: Sequence[tuple[str, float]]
) -> dict[str, PipelineFigures]:
    results: dict[str, PipelineFigures] = {}
    with BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker:
        for pipeline in pipelines:
            try:
                run = await run_pipeline(pipeline, broker, xvfb, workload, plan)
            except Exception as exc:
                raise RuntimeError(f"pipeline {pipeline.name} could not run: {exc}") from exc
            results[pipeline.name] = figures(run)
            print(pipeline_table(results[pipeline.name]) + "\n", flush=True)
    return results


def conditions(pipelines: Sequence[Pipeline], phase_seconds: float, static_seconds: float) -> list[str]:
    return [
        *machine_conditions(),
        "screen: Xvfb 1920x1080x24, no window manager; everything on 127.0.0.1 (broker with loopback ICE)",
        f"workload (bench/workload.py): desktop, an editor with 600 lines of argparse.py in an 11 pt monospace font, "
        f"a notes window, the 48 px marker; phases typing ({TYPING_RATE:g} chars/s at the caret), scrolling "
        f"(one line per tick, {TICK_RATE:g} ticks/s), moving (the 520x360 notes window, 10 px per tick, "
        f"{TICK_RATE:g} ticks/s), {phase_seconds:g} s each, then static ({static_seconds:g} s); a mark every "
        "250 ms +- 50 ms in all phases but static",
        "host CPU: utime+stime of the host process (its threads and children) from /proc, per phase",
        *(f"{p.name}: {p.description}" for p in pipelines),
    ]


def report(results: dict[str, PipelineFigures]) -> str:
    parts = [pipeline_table(f) for f in results.values()]
    parts += ["**Comparison**\n\n" + comparison_table(results), "**Targets (issue 9)**\n\n" + targets_table(results)]
    return "\n\n".join(parts)


def _pipelines(text: str | None) -> list[Pipeline]:
    if text is None:
        return list(PIPELINES)
    keys = {p.key: p for p in PIPELINES}
    chosen = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in keys]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown pipeline {', '.join(unknown) or '(none given)'}; choose from {', '.join(keys)}"
        )
    return [p for p in PIPELINES if p.key in chosen]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"seconds must be between 1 and 3600, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--static-seconds", type=_seconds, default=60.0, help="length of the static phase (default 60)")
    parser.add_argument("--phase-seconds", type=_seconds, default=10.0,
                        help="length of each of typing, scrolling, moving (default 10)")
    parser.add_argument("--only", type=_pipelines, default=None, metavar="NAMES",
                        help="comma-separated pipelines to run: " + ", ".join(p.key for p in PIPELINES) + " (default all)")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the figures in {DOCS.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    pipelines: list[Pipeline] = args.only or list(PIPELINES)
    plan = [("typing", args.phase_seconds), ("scrolling", args.phase_seconds), ("moving", args.phase_seconds),
            ("static", args.static_seconds)]
    with XvfbServer.start(WIDTH, HEIGHT) as xvfb, WorkloadProcess(xvfb.env) as workload:
        if (workload.width, workload.height) != (WIDTH, HEIGHT):
            raise RuntimeError(f"the workload sees a {workload.width}x{workload.height} screen, not {WIDTH}x{HEIGHT}")
        results = asyncio.run(measure(xvfb, workload, pipelines, plan))
    publish("screen_stream", conditions(pipelines, args.phase_seconds, args.static_seconds), report(results),
            write=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
