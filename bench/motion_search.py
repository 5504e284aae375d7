"""The screen encoder's motion search on a desktop that scrolls, moves a window and is typed on.

Starts Xvfb (1920x1080x24) and the benchmark's scripted desktop (``bench/workload.py``), grabs
each phase at a fixed frame rate with the host's own capture (``host_client.capture``), then
encodes the grabbed frames twice with :class:`~peer.screen_encoder.ScreenH264Encoder` on a
budget that never caps a frame: once as shipped (:data:`~peer.screen_encoder.MOTION_SEARCH`),
once with x264 ``superfast``'s own search (a diamond over 16 pixels), the peer in the same run.
Per phase: the mean size of a frame after the first, the encoding time a frame and the luma
PSNR of what a decoder makes of it against what was grabbed.

Run: ``.venv/bin/python -m bench.motion_search [--fps 10] [--seconds 3] [--write-docs]``
(``--write-docs`` replaces only this benchmark's section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc.codecs.h264 import h264_depayload
from aiortc.mediastreams import VIDEO_TIME_BASE

from bench.report import machine_conditions, publish
from bench.workload import WorkloadProcess
from host_client.capture import Screen
from host_client.colour_conversion import to_i420
from peer import screen_encoder
from peer.stream_budget import FrameTag, StreamBudget
from protocol.cli import number_in_range
from tests.support.xvfb import XvfbServer

PHASES = ("scrolling", "moving", "typing")
SUPERFAST_OWN = "me=dia:merange=16"
"""x264 ``superfast``'s motion search, said explicitly (the peer)."""
TIME_BASE_HZ = 90_000


@dataclass(frozen=True)
class Encoded:
    mean_bytes: float
    encode_ms: float
    psnr_db: float


def grab(display_env: dict[str, str], phase: str, seconds: float, fps: float) -> list[np.ndarray]:
    """The screen every ``1 / fps`` seconds while the workload runs ``phase`` (BGRA, as the host grabs it)."""
    os.environ["DISPLAY"] = display_env["DISPLAY"]
    frames: list[np.ndarray] = []
    done = threading.Event()

    def grabbing() -> None:
        screen = Screen()
        try:
            monitor = screen.monitors()[0]
            while not done.is_set():
                started = time.monotonic()
                frames.append(screen.grab_pixels(monitor).copy())
                time.sleep(max(0.0, 1 / fps - (time.monotonic() - started)))
        finally:
            screen.close()

    with WorkloadProcess(display_env) as workload:
        workload.reset()
        thread = threading.Thread(target=grabbing, name="grab")
        thread.start()
        try:
            workload.phase(phase, seconds)
        finally:
            done.set()
            thread.join()
    return frames


def encode(frames: list[np.ndarray], fps: float, motion_search: str) -> Encoded:
    """``frames`` through the screen encoder with ``motion_search``, never capped; decoded back for PSNR."""
    shipped = screen_encoder.MOTION_SEARCH
    screen_encoder.MOTION_SEARCH = motion_search
    try:
        encoder, budget = screen_encoder.ScreenH264Encoder(), StreamBudget()
        budget.link_bitrate(100_000_000, time.monotonic())
        decoder = av.CodecContext.create("h264", "r")
        sizes, seconds, psnrs = [], [], []
        sources: list[np.ndarray] = []  # luma of each frame sent, in order: the decoder may hand a frame back later
        for n, pixels in enumerate(frames):
            frame = to_i420(pixels)
            frame.pts, frame.time_base = round(n * TIME_BASE_HZ / fps), VIDEO_TIME_BASE
            frame.opaque = FrameTag(budget)
            sources.append(frame.to_ndarray()[: frame.height].astype(float))
            started = time.perf_counter()
            payloads, _timestamp = encoder.encode(frame)
            seconds.append(time.perf_counter() - started)
            sizes.append(sum(map(len, payloads)))
            for packet in decoder.parse(b"".join(h264_depayload(p) for p in payloads)):
                for decoded in decoder.decode(packet):
                    luma, source = decoded.to_ndarray()[: decoded.height].astype(float), sources[len(psnrs)]
                    psnrs.append(10 * np.log10(255**2 / max(1e-9, float(np.mean((luma - source) ** 2)))))
    finally:
        screen_encoder.MOTION_SEARCH = shipped
    return Encoded(statistics.fmean(sizes[1:]), 1000 * statistics.fmean(seconds[1:]), statistics.fmean(psnrs[1:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fps", type=number_in_range(float, 1, 60, "frame rate"), default=10.0,
                        help="frames grabbed a second (default 10: the rate a 1-2.5 Mbit/s link scrolls at)")
    parser.add_argument("--seconds", type=number_in_range(float, 1, 60, "seconds"), default=3.0,
                        help="seconds of each phase (default 3)")
    parser.add_argument("--write-docs", action="store_true", help="replace this section's figures in docs/benchmarks.md")
    args = parser.parse_args(argv)
    rows = ["| phase | motion search | frames | mean frame after the first | encoding a frame | luma PSNR |",
            "|---|---|---|---|---|---|"]
    with XvfbServer.start(1920, 1080) as xvfb:
        for phase in PHASES:
            frames = grab(xvfb.env, phase, args.seconds, args.fps)
            for label, search in ((f"Deskhand ({screen_encoder.MOTION_SEARCH})", screen_encoder.MOTION_SEARCH),
                                  (f"superfast's own ({SUPERFAST_OWN})", SUPERFAST_OWN)):
                got = encode(frames, args.fps, search)
                rows.append(f"| {phase} | {label} | {len(frames)} | {got.mean_bytes / 1000:.1f} kB "
                            f"| {got.encode_ms:.1f} ms | {got.psnr_db:.1f} dB |")
                print(rows[-1], flush=True)
    conditions = [
        *machine_conditions(),
        f"screen: Xvfb 1920x1080x24, bench/workload.py's phases, {args.seconds:g} s each, grabbed at {args.fps:g} fps "
        f"by host_client.capture; ScreenH264Encoder (x264 superfast, zerolatency, CRF {screen_encoder.CRF}, "
        f"{screen_encoder.encoder_threads()} threads) on a budget that caps no frame",
    ]
    publish("motion_search", conditions, "\n".join(rows), write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
