"""The first picture on a narrow link: bytes until the technician can read it, per H.264 profile.

Starts Xvfb (1920x1080x24) with the scripted desktop of ``bench/workload.py``,
grabs its still screen and encodes it as a session's first picture is encoded:
:class:`~peer.screen_encoder.ScreenH264Encoder` under a
:class:`~peer.stream_budget.StreamBudget` before any estimate (the 1 Mbit/s start:
a keyframe capped at 0.7 s of it, then refinement frames at the
budget's refinement rate, each capped to its share). Each frame is decoded by
aiortc's H.264 decoder and its luma PSNR measured against the screen.

Printed per profile (constrained baseline, aiortc's only H.264; main, offered
by :func:`peer.aiortc_hooks.offer_h264_main`): the keyframe's size and PSNR, and
the bytes (with the seconds they take at the start rate) until the picture
reaches 30 dB (the link sweep's "legible"), 35 dB and 40 dB (the sweep's
"sharp"). The encoder's time per frame is printed too: CABAC costs CPU.

Run: ``.venv/bin/python -m bench.first_picture [--frames 60] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc.codecs.h264 import H264Decoder, h264_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import VIDEO_TIME_BASE

from bench.report import machine_conditions, publish
from bench.screen_stream import grab_screen
from bench.stream_figures import luma, psnr
from bench.workload import WorkloadProcess
from peer.screen_encoder import ScreenH264Encoder
from peer.stream_budget import START_BITRATE, FrameTag, StreamBudget
from protocol.cli import number_in_range
from tests.support.xvfb import XvfbServer

THRESHOLDS = (30.0, 35.0, 40.0)
"""Luma PSNR levels reported: legible (the link sweep's first legible frame), clear, sharp."""
PROFILES = ("Baseline", "Main")


@dataclass
class FirstPicture:
    """How one profile's first picture sharpened."""

    profile: str
    keyframe_bytes: int
    keyframe_db: float
    reached: dict[float, tuple[int, int]]
    """PSNR level: (frames, bytes) when the decoded picture first reached it."""
    encode_ms: float

    def cell(self, level: float) -> str:
        if level not in self.reached:
            return "not reached"
        frames, size = self.reached[level]
        return f"{size / 1000:.1f} kB ({size * 8 / START_BITRATE:.2f} s), frame {frames}"


def first_picture(rgb: np.ndarray, profile: str, frames: int) -> FirstPicture:
    """Encode ``rgb`` as a first picture and its refinement (``frames`` in all) under the start budget."""
    source = luma(rgb)
    encoder, decoder, budget = ScreenH264Encoder(profile=profile), H264Decoder(), StreamBudget(max_fps=30)
    total, spent, reached = 0, 0.0, {}
    keyframe: tuple[int, float] | None = None
    for n in range(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base, frame.opaque = n * 3000, VIDEO_TIME_BASE, FrameTag(budget)
        started = time.perf_counter()
        payloads, timestamp = encoder.encode(frame, force_keyframe=n == 0)
        spent += time.perf_counter() - started
        size = sum(len(p) for p in payloads)
        total += size
        data = b"".join(h264_depayload(p) for p in payloads)
        for decoded in decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
            assert isinstance(decoded, av.VideoFrame)  # an H.264 decoder makes video frames only
            db = psnr(luma(decoded.to_ndarray(format="rgb24")), source)
            if keyframe is None:
                keyframe = (size, db)
            for level in THRESHOLDS:
                if level not in reached and db >= level:
                    reached[level] = (n + 1, total)
        if len(reached) == len(THRESHOLDS):
            break
    assert keyframe is not None, "the first frame decodes"
    return FirstPicture(profile, keyframe[0], keyframe[1], reached, spent / max(1, n + 1) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=number_in_range(int, 2, 600, "frames"), default=90,
                        help="most frames encoded per profile, the keyframe included (default 90)")
    parser.add_argument("--write-docs", action="store_true", help="replace this section's figures in docs/benchmarks.md")
    args = parser.parse_args(argv)
    with XvfbServer.start(1920, 1080) as xvfb, WorkloadProcess(xvfb.env) as workload:
        workload.reset()
        time.sleep(1.0)  # the desktop drawn
        rgb = grab_screen(xvfb.display)
    results = [first_picture(rgb, profile, args.frames) for profile in PROFILES]
    rows = ["| H.264 profile | keyframe | " + " | ".join(f"to {level:g} dB" for level in THRESHOLDS) + " | encoding, per frame |",
            "|---|---|" + "---|" * len(THRESHOLDS) + "---|"]
    for result in results:
        rows.append(f"| {result.profile} | {result.keyframe_bytes / 1000:.1f} kB, {result.keyframe_db:.1f} dB | "
                    + " | ".join(result.cell(level) for level in THRESHOLDS) + f" | {result.encode_ms:.1f} ms |")
    conditions = [*machine_conditions(),
                  "screen: Xvfb 1920x1080x24, bench/workload.py's desktop, still",
                  f"budget: the stream's start ({START_BITRATE / 1e6:g} Mbit/s, no estimate yet): keyframe and "
                  "refinement frames capped as the live stream caps them; seconds are the bytes at that rate",
                  "PSNR: luma of each frame decoded by aiortc's H.264 decoder against the grabbed screen",
                  f"at most {args.frames} frames per profile"]
    publish("first_picture", conditions, "\n".join(rows), write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
