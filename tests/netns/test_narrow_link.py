"""A session through a narrow link (issue 19): a 1.5 Mbit/s uplink (tbf), relayed through the link
emulator's relay, on the benchmark's 1080p text desktop.

Before issue 19 no frame came at all in 90 s at this rate: the first keyframe (about 144 kB) left in one
burst and the bottleneck queue dropped most of it. The budget now starts at 1 Mbit/s, so the first
keyframe is capped to 25 kB; it is coarse, and refinement frames (at 0.8 of the budget) sharpen it.
On this link it is legible (30 dB) about 1.3 s after the first frame, 40 dB after 2.7 s in a run
without losses; a lost packet costs a keyframe and the sharpening starts over.

What this tests is what frame caps guarantee on their own. At 1 Mbit/s, or with 150 ms of round trip,
the picture still stalls without a pacer and timed loss recovery: the keyframe's burst and the
refinement frames behind it overflow tbf's queue, and aiortc's NACK (every missing packet, again with each
new gap) answered by RTX for each makes the link carry 2-3x the stream (measured: 1.9k packets dropped by
tbf in 11 s at 1 Mbit/s, against 0.9k sent). Bounds are generous (the machine is shared); the figures
are printed.
"""

from __future__ import annotations

import asyncio
import time

import av
import numpy as np
import pytest

from bench.stream_figures import psnr
from bench.workload import WorkloadProcess
from host_client.capture import Screen, to_i420
from tests.netns.conftest import relay_broker
from tests.support.coturn import CoturnServer
from tests.support.link_emulator import RELAY_PORT, ImpairedRelay, Impairment, shape, unshape
from tests.support.live_session import live_session
from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.xvfb import XvfbServer


class Received:
    """The luma of every frame the technician decodes, with its arrival time."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []

    def on_frame(self, frame: av.VideoFrame, arrived: float) -> None:
        self.frames.append((arrived, frame.to_ndarray(format="gray")))


async def test_at_1_5_mbit_a_legible_picture_comes_within_seconds_and_sharpens(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = net_topology
    monkeypatch.setenv("DISPLAY", xvfb.display)
    workload = await asyncio.to_thread(WorkloadProcess, xvfb.env)
    screen = Screen()
    source = to_i420(screen.grab_pixels(screen.monitors()[0])).to_ndarray(format="gray")
    screen.close()
    received = Received()
    env = {**coturn.broker_env("udp"), "DESKHAND_TURN_URLS": f"turn:{PUBLIC_IP}:{RELAY_PORT}?transport=udp"}
    shape(net, "user", "up", kbit=1500)
    try:
        with ImpairedRelay.start(net, Impairment(), ["198.18.1.0/24"]), net.entered("tech"), \
                relay_broker(net, env) as broker:
            async with live_session(broker, xvfb.env, "--consent", "view", "--insecure", wrap=net.wrap("user"),
                                    on_frame=received.on_frame) as live:
                opened = time.monotonic()
                await live.view.wait_for_frame(45)
                await asyncio.sleep(8.0)
    finally:
        unshape(net, "user", "up")
        await asyncio.to_thread(workload.close)
    first_at = received.frames[0][0]
    quality = [(arrived - first_at, psnr(luma, source)) for arrived, luma in received.frames]
    legible = next((t for t, db in quality if db >= 30), None)
    sharp = next((t for t, db in quality if db >= 40), None)
    print(f"\n1.5 Mbit/s: first frame {first_at - opened:.2f} s after the view opened, "
          f"{quality[0][1]:.1f} dB; then 30 dB after {legible} s, 40 dB after {sharp} s; "
          f"{len(quality)} frames, the last {quality[-1][1]:.1f} dB")
    # The check: PSNR >= 30 dB within 10 s on a 1.5 Mbit/s link; then it keeps sharpening.
    assert legible is not None and first_at - opened + legible < 10.0, quality[:20]
    assert quality[-1][1] >= 35, quality[-20:]
