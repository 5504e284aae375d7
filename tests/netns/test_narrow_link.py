"""A session through a narrow link (issue 19): a 1 Mbit/s uplink (tbf) with 150 ms of round trip, relayed
through the link emulator's relay, on the benchmark's 1080p text desktop: the issue's condition for the
first legible frame.

Before issue 19 no frame came at all in 90 s at 1.5 Mbit/s: the first keyframe (about 144 kB) left in one
burst and the bottleneck queue dropped most of it. The budget now starts at 1 Mbit/s and the first
keyframe may take 0.7 s of it (about 52 kB, 31 dB: legible in one frame, 2026-12-04); refinement
frames (at 0.8 of the budget) sharpen it, 40 dB about 0.65 s later. Before that window (0.2 s) the
keyframe was about 22 kB at 22.6 dB. With
frame caps alone this test ran at 1.5 Mbit/s and no added delay: at 1 Mbit/s or 150 ms the keyframe's
burst and aiortc's NACK/RTX storm stalled the picture. With the pacer, timed loss recovery and paced
recording uploads it passes here: 30 dB 0.7-1.2 s after the first frame, 40 dB 1.8-6.7 s after it
(four runs, 2026-12-03, shared machine). The first frame itself came 3.3-8.5 s after the view opened
(the host's start, consent, TURN and DTLS over 150 ms, on two shared cores), so the bound on "legible"
is 15 s from the view opening, looser than the issue's 10 s at 1.5 Mbit/s. Figures are printed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.frame_probe import LumaFrames
from bench.stream_figures import psnr
from bench.workload import WorkloadProcess
from host_client.capture import Screen
from host_client.colour_conversion import to_i420
from tests.netns.conftest import relay_broker
from tests.support.coturn import CoturnServer
from tests.support.link_emulator import RELAY_PORT, ImpairedRelay, Impairment, shape, unshape
from tests.support.live_session import live_session
from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.xvfb import XvfbServer

UPLINK_KBIT = 1000
ONE_WAY_DELAY = 0.075
"""The issue's condition for the first legible frame: 1 Mbit/s and 150 ms of round trip."""
LEGIBLE_WITHIN = 15.0
"""Seconds from the view opening to a frame of 30 dB (the session's set-up included)."""


async def test_at_1_mbit_and_150_ms_a_legible_picture_comes_within_seconds_and_sharpens(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = net_topology
    monkeypatch.setenv("DISPLAY", xvfb.display)
    workload = await asyncio.to_thread(WorkloadProcess, xvfb.env)
    screen = Screen()
    source = to_i420(screen.grab_pixels(screen.monitors()[0])).to_ndarray(format="gray")
    screen.close()
    received = LumaFrames()
    env = {**coturn.broker_env("udp"), "DESKHAND_TURN_URLS": f"turn:{PUBLIC_IP}:{RELAY_PORT}?transport=udp"}
    shape(net, "user", "up", kbit=UPLINK_KBIT)
    try:
        with ImpairedRelay.start(net, Impairment(delay=ONE_WAY_DELAY), ["198.18.1.0/24"]), net.entered("tech"), \
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
    print(f"\n{UPLINK_KBIT} kbit/s, {ONE_WAY_DELAY * 2000:.0f} ms: first frame {first_at - opened:.2f} s after the view opened, "
          f"{quality[0][1]:.1f} dB; then 30 dB after {legible} s, 40 dB after {sharp} s; "
          f"{len(quality)} frames, the last {quality[-1][1]:.1f} dB")
    # The check (PSNR >= 30 dB within 10 s on a 1.5 Mbit/s link), on a narrower, longer link with
    # a generous bound; then it keeps sharpening.
    assert legible is not None and first_at - opened + legible < LEGIBLE_WITHIN, quality[:20]
    assert quality[-1][1] >= 35, quality[-20:]
