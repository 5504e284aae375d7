"""The technician's browser console in headless Chromium, as a screen-streaming benchmark receiver.

    async with chromium_receiver(broker, display_env, 1920, 1080) as (receiver, host_pid):
        ...                       # the workload paints marks; receiver.frames fills up
        await receiver.flush()    # the frames the page has seen up to now
        await receiver.bytes_received(), await receiver.latest_rgb()

What runs: Debian's Chromium through Playwright, launched as the browser tests
launch it (:data:`tests.browser.conftest.CHROMIUM_ARGS`); the first admin signs in
on the console, opens a ticket and starts a session on its pages
(:func:`tests.browser.conftest.open_new_session`); ``python -m <host_module> join
CODE --broker URL --ui terminal --consent view`` joins on the given display; the
session page's live view (``<video id="remote-screen">``) plays the host's screen.

When a frame counts as seen: a ``requestVideoFrameCallback`` loop on that
``<video>`` runs once per video frame the page presents. Its ``now`` argument is
the time of the rendering update in which the frame was handed to the compositor
(the same clock as ``requestAnimationFrame``): the moment the frame joins what
the technician's screen shows, one display refresh before it is lit (Chromium's
``metadata.presentationTime`` agrees: median difference 0.2 ms, at most one 16.7 ms
refresh; the video is composited off the main thread). The receiver
records ``performance.timeOrigin + now`` as wall-clock seconds (the workload's
:attr:`~bench.stream_marks.Mark.painted_wall` is ``time.time()`` on the same
machine), so :attr:`ChromiumReceiver.wall_clock` is True. In the same callback the
marker's centre pixel of the presented frame is read and classified with
:func:`~bench.stream_marks.palette_slot`: from the decoded frame's Y'CbCr planes
(``VideoFrame.copyTo`` of a 2x2 block, converted with the frame's own matrix and
range; ~0.1 ms), because ``drawImage`` of a 1080p video into even a 1x1 canvas
converts the whole frame to RGB first (~8 ms of the page's main thread per frame,
p95 ~27 ms on two busy cores). Both readings agree on every palette colour; the
canvas is the fallback where ``VideoFrame`` is missing. Chromium's own
per-frame figures (when the last packet arrived, decode time, the presented-frame
counter) are kept in :attr:`ChromiumReceiver.timings`, so a report can split the
latency into "network and host" and "in the browser".

The page is not changed for the benchmark: an init script wraps the
``RTCPeerConnection`` constructor to remember every connection the page makes,
and :meth:`ChromiumReceiver.bytes_received` sums their ``inbound-rtp`` video
``bytesReceived`` (RTP payload bytes) from ``getStats()``.

Self-check (Xvfb, broker, a painter changing the marker's colour every 250 ms)::

    .venv/bin/python -m bench.chromium_receiver [--marks 80]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image
from playwright.async_api import Browser, BrowserType, Page, async_playwright

from bench.stream_marks import FrameSeen, marker_centre, palette_slot
from tests.browser.conftest import CHROMIUM_ARGS, open_new_session, sign_in
from tests.conftest import CHROMIUM_PATHS
from tests.support.broker import BrokerProcess
from tests.support.line_child import REPO

NAME = "Deskhand -> Chromium"

MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""What ``host_module`` may be: it is run as ``python -m host_module``."""

VIEWPORT = {"width": 1280, "height": 800}
"""The console's window, as in the browser tests: the 1920x1080 screen is shown scaled down."""

BENCH_CHROMIUM_ARGS: list[str] = []
"""Flags added to the browser tests' ones: none. Headless Chromium runs its rendering updates at
60 Hz (rAF 61/s measured), as a technician's 60 Hz display would: video frames up to 60 fps each
get their callback. ``--disable-gpu-vsync --disable-frame-rate-limit`` leave rAF at ~60/s in
headless mode (58/s measured) and only add CPU load (one paced 30 fps run received 15 frames/s
with them against 30 without), so they are not used."""

DRAIN_INTERVAL = 0.2
"""Seconds between two pulls of the page's frame records into :attr:`ChromiumReceiver.frames`."""

RECORD_PEER_CONNECTIONS = """(() => {
  // Benchmark instrumentation, installed before the console's own scripts run: remember every
  // RTCPeerConnection the page creates (the console keeps its own in a closure) so that getStats()
  // can be read from outside. A subclass keeps the prototype, statics and instanceof intact.
  const Native = window.RTCPeerConnection;
  const connections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); connections.push(this); }
  };
  Object.defineProperty(window, "__deskhandBenchConnections", { value: connections });
})();"""

START_SAMPLING = """([sx, sy]) => {
  const video = document.getElementById('remote-screen');
  const canvas = document.createElement('canvas');
  canvas.width = 1; canvas.height = 1;
  const g = canvas.getContext('2d', { willReadFrequently: true, alpha: false });
  const seen = [];
  window.__deskhandBenchFrames = seen;
  const optional = (v) => (v === undefined ? null : v);
  const wall = (t) => (t === undefined ? null : performance.timeOrigin + t);
  // A 2x2 block at even coordinates: whole 4:2:0 chroma samples, as VideoFrame.copyTo requires.
  const x = Math.max(0, Math.round(sx)) & ~1, y = Math.max(0, Math.round(sy)) & ~1;
  const rect = { x, y, width: 2, height: 2 };
  const buffer = new Uint8Array(64);
  const clamp = (v) => Math.max(0, Math.min(255, Math.round(v)));

  // Y'CbCr -> R'G'B' with the frame's own matrix and range, as Chromium renders it (BT.601 when unsaid).
  function toRgb(Y, U, V, space) {
    const [kr, kb] = space.matrix === 'bt709' ? [0.2126, 0.0722] : space.matrix === 'bt2020-ncl' ? [0.2627, 0.0593] : [0.299, 0.114];
    const full = space.fullRange === true;
    const l = full ? Y : (Y - 16) * 255 / 219;
    const cb = (U - 128) * (full ? 1 : 255 / 224), cr = (V - 128) * (full ? 1 : 255 / 224);
    const kg = 1 - kr - kb;
    const r = l + 2 * (1 - kr) * cr, b = l + 2 * (1 - kb) * cb;
    return [clamp(r), clamp((l - kr * r - kb * b) / kg), clamp(b)];
  }

  // Reads the pixel from the decoded planes: no colour conversion of the whole 1920x1080 frame
  // (drawImage of a video converts all of it, ~10 ms of the page's main thread per frame).
  async function fromPlanes() {
    const frame = new VideoFrame(video);
    try {
      const layout = await frame.copyTo(buffer, { rect });
      const at = (plane) => buffer[layout[plane].offset];
      switch (frame.format) {
        case 'I420': case 'I420A': case 'I422': case 'I444': return toRgb(at(0), at(1), at(2), frame.colorSpace);
        case 'NV12': return toRgb(at(0), at(1), buffer[layout[1].offset + 1], frame.colorSpace);
        case 'RGBA': case 'RGBX': return [at(0), buffer[layout[0].offset + 1], buffer[layout[0].offset + 2]];
        case 'BGRA': case 'BGRX': return [buffer[layout[0].offset + 2], buffer[layout[0].offset + 1], at(0)];
        default: return null;
      }
    } finally { frame.close(); }
  }

  function fromCanvas() {
    g.drawImage(video, x, y, 1, 1, 0, 0, 1, 1);
    return Array.from(g.getImageData(0, 0, 1, 1).data.slice(0, 3));
  }

  const onFrame = (now, meta) => {
    video.requestVideoFrameCallback(onFrame);
    const began = performance.now();
    const record = [
      performance.timeOrigin + now, null, null, null, wall(meta.receiveTime),
      optional(meta.processingDuration), optional(meta.presentedFrames), wall(meta.presentationTime), null, null,
    ];
    seen.push(record);  // in presentation order; filled in once the pixel is read
    const done = (rgb, how) => { record.splice(1, 3, ...rgb); record[8] = performance.now() - began; record[9] = how; };
    (typeof VideoFrame === 'function' ? fromPlanes() : Promise.resolve(null))
      .catch(() => null)
      .then((rgb) => (rgb ? done(rgb, 'planes') : done(fromCanvas(), 'canvas')))
      .catch((err) => done([-1, -1, -1], 'failed: ' + err));
  };
  video.requestVideoFrameCallback(onFrame);
}"""

DRAIN = """() => {
  const seen = window.__deskhandBenchFrames;
  let ready = 0;
  while (ready < seen.length && seen[ready][9] !== null) ready++;
  return seen.splice(0, ready);
}"""
PAGE_CLOCK = "() => performance.timeOrigin + performance.now()"

VIDEO_STATE = """() => {
  const v = document.getElementById('remote-screen');
  return v ? [v.videoWidth, v.videoHeight, v.readyState, v.paused] : [0, 0, 0, true];
}"""

BYTES_RECEIVED = """async () => {
  let total = 0;
  for (const pc of window.__deskhandBenchConnections) {
    // A closed connection (the host reconnected) keeps the count it had when last read.
    if (pc.connectionState !== 'closed') {
      try {
        let bytes = 0;
        (await pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') bytes += r.bytesReceived || 0; });
        pc.__deskhandBenchBytes = bytes;
      } catch (_) { /* closing under our feet */ }
    }
    total += pc.__deskhandBenchBytes || 0;
  }
  return total;
}"""

SNAPSHOT = """([width, height]) => {
  const video = document.getElementById('remote-screen');
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  canvas.getContext('2d', { alpha: false }).drawImage(video, 0, 0, width, height);
  return canvas.toDataURL('image/png');
}"""


def chromium_path() -> str:
    """Debian's Chromium binary; raises naming the package when it is missing."""
    for path in CHROMIUM_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"Chromium is not installed (looked for {' and '.join(CHROMIUM_PATHS)}): apt-get install chromium")


@dataclass(frozen=True)
class FrameTiming:
    """Chromium's own figures for one presented frame (wall-clock seconds; None when Chromium gave none)."""

    presented: float
    """The rendering update that handed the frame to the compositor: :attr:`FrameSeen.arrived`."""
    received: float | None
    """When the last RTP packet of the frame arrived (``metadata.receiveTime``)."""
    processing_ms: float | None
    """Decode time (``metadata.processingDuration``)."""
    presented_frames: int | None
    """Chromium's count of frames presented so far: a jump of more than one means frames went by without a callback."""
    submitted: float | None
    """When Chromium handed the frame to the compositor (``metadata.presentationTime``), at most one refresh before :attr:`presented`."""
    sample_ms: float
    """How long reading the marker pixel took (the compositor shows the video without waiting for it)."""
    sampled_from: str
    """``"planes"``: the decoded frame's Y'CbCr samples (``VideoFrame.copyTo``); ``"canvas"``: a 2D canvas."""


class ChromiumReceiver:
    """The live view of a session page; a :class:`~bench.stream_receiver.StreamReceiver`."""

    wall_clock = True

    def __init__(self, page: Page, width: int, height: int, name: str = NAME) -> None:
        self.name = name
        self.page = page
        self.width, self.height = width, height
        self.frames: list[FrameSeen] = []
        self.timings: list[FrameTiming] = []
        self.video_size = (0, 0)
        """The video's intrinsic size when sampling started (the host may send fewer pixels than the screen has)."""
        self._drainer: asyncio.Task[None] | None = None

    async def start(self, video_width: int, video_height: int) -> None:
        """Start the per-frame sampling on a playing video of ``video_width`` x ``video_height``."""
        self.video_size = (video_width, video_height)
        x, y = marker_centre(self.width, self.height)
        # The marker's centre in the video's own pixels (the same as the screen's unless the host scaled).
        sx, sy = (x + 0.5) * video_width / self.width - 0.5, (y + 0.5) * video_height / self.height - 0.5
        await self.page.evaluate(START_SAMPLING, [sx, sy])
        self._drainer = asyncio.create_task(self._drain_forever())

    async def flush(self) -> int:
        """Move the frames the page has recorded so far into :attr:`frames`; how many were added."""
        records = await self.page.evaluate(DRAIN)
        for presented_ms, r, g, b, received_ms, processing, count, submitted_ms, sample_ms, how in records:
            if how.startswith("failed"):
                raise RuntimeError(f"the page could not read the marker pixel of a frame: {how}")
            presented = presented_ms / 1000
            self.frames.append(FrameSeen(presented, palette_slot((r, g, b))))
            self.timings.append(FrameTiming(
                presented,
                None if received_ms is None else received_ms / 1000,
                None if processing is None else processing * 1000,
                count,
                None if submitted_ms is None else submitted_ms / 1000,
                sample_ms,
                how,
            ))
        return len(records)

    async def _drain_forever(self) -> None:
        while True:
            await asyncio.sleep(DRAIN_INTERVAL)
            await self.flush()

    async def stop(self) -> None:
        """Stop pulling in the background, after one last :meth:`flush`."""
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None
        with contextlib.suppress(Exception):  # the page may be gone already
            await self.flush()

    async def clock_offset(self, tries: int = 5) -> tuple[float, float]:
        """Page clock minus ``time.time()`` in seconds, and its uncertainty (half the best round trip).

        The page's ``performance.timeOrigin + performance.now()`` and Python's ``time.time()``
        should agree on one machine; this checks it (measured: within 0.3 ms, 2 ms round trips).
        """
        best: tuple[float, float] | None = None
        for _ in range(tries):
            before = time.time()
            page_ms = await self.page.evaluate(PAGE_CLOCK)
            after = time.time()
            if best is None or (after - before) / 2 < best[1]:
                best = (page_ms / 1000 - (before + after) / 2, (after - before) / 2)
        assert best is not None
        return best

    async def bytes_received(self) -> int:
        """RTP payload bytes of video the page has received (``inbound-rtp`` ``bytesReceived``, all connections)."""
        return int(await self.page.evaluate(BYTES_RECEIVED))

    async def latest_rgb(self) -> np.ndarray:
        """The frame the ``<video>`` shows now, as (height, width, 3) uint8 RGB at the source's size."""
        url: str = await self.page.evaluate(SNAPSHOT, [self.width, self.height])
        header, _, data = url.partition(",")
        if header != "data:image/png;base64":
            raise RuntimeError(f"the page returned no PNG snapshot (got {header[:40]!r})")
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)


async def _wait_for_video(page: Page, host: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> tuple[int, int]:
    """The video's intrinsic size once it plays (polled: the console's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout
    while True:
        width, height, ready, paused = await page.evaluate(VIDEO_STATE)
        if width > 0 and ready >= 2 and not paused:
            return width, height
        if host.poll() is not None:
            raise RuntimeError(f"the host exited with {host.returncode} before the video played:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the live view did not play within {timeout:g} s; the host said:\n{_tail(log)}")
        await asyncio.sleep(0.1)


def _tail(log: IO[bytes], size: int = 3000) -> str:
    # pread: the host shares this file's offset and is still writing at its end.
    end = os.fstat(log.fileno()).st_size
    start = max(0, end - size)
    return os.pread(log.fileno(), end - start, start).decode(errors="replace").strip() or "(nothing)"


async def _launch(chromium: BrowserType, extra_args: Sequence[str]) -> Browser:
    return await chromium.launch(
        executable_path=chromium_path(), headless=True, args=[*CHROMIUM_ARGS, *extra_args]
    )


@asynccontextmanager
async def chromium_receiver(
    broker: BrokerProcess,
    display_env: dict[str, str],
    width: int,
    height: int,
    *,
    host_module: str = "host_client.cli",
    host_args: Sequence[str] = (),
    name: str = NAME,
    timeout: float = 60.0,
) -> AsyncIterator[tuple[ChromiumReceiver, int]]:
    """A session watched in Chromium's console: ``(receiver, host process id)`` once the video plays.

    ``broker`` must run with ``DESKHAND_ICE_LOOPBACK=true``; ``display_env`` is the
    ``{"DISPLAY": ...}`` of a ``width`` x ``height`` X server. ``host_module`` is run
    as ``python -m host_module join CODE --broker URL --ui terminal --consent view
    *host_args``. On exit the session is ended on the page and the host waited for
    (killed after 20 s).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"the screen size must be positive, not {width}x{height}")
    if not MODULE_NAME.fullmatch(host_module):
        raise ValueError(f"host_module must be a dotted Python module name, not {host_module!r}")
    async with async_playwright() as playwright:
        browser = await _launch(playwright.chromium, BENCH_CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=VIEWPORT)
            # As in the browser tests: with media allowed Chromium offers a plain 127.0.0.1 candidate, not mDNS.
            await context.grant_permissions(["camera", "microphone"], origin=broker.base_url)
            await context.add_init_script(RECORD_PEER_CONNECTIONS)
            page = await context.new_page()
            await page.goto(broker.base_url + "/")
            await sign_in(page, "admin", broker.admin_password)
            code = await open_new_session(page, "Screen streaming benchmark", "Bench Mark", "bench@example.com")
            with tempfile.TemporaryFile() as log:
                # The host's output goes to a file: a pipe nobody reads would stall a long run.
                host = subprocess.Popen(
                    [sys.executable, "-m", host_module, "join", code, "--broker", broker.base_url,
                     "--ui", "terminal", "--consent", "view", *host_args],
                    stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, **display_env}, cwd=REPO,
                )
                receiver = ChromiumReceiver(page, width, height, name)
                try:
                    video_width, video_height = await _wait_for_video(page, host, log, timeout)
                    await receiver.start(video_width, video_height)
                    yield receiver, host.pid
                finally:
                    try:
                        await receiver.stop()
                    finally:
                        await _end(page, host)
        finally:
            await browser.close()


async def _end(page: Page, host: subprocess.Popen[bytes]) -> None:
    """End the session from the page as a technician would, then wait for the host (kill it if it lingers)."""
    if host.poll() is None:
        with contextlib.suppress(Exception):  # a broken page must not keep the host alive
            await page.get_by_label("Note for the ticket").fill("benchmark over")
            await page.get_by_role("button", name="End session").click(timeout=5_000)
        try:
            await asyncio.to_thread(host.wait, 20)
        except subprocess.TimeoutExpired:
            host.kill()
            await asyncio.to_thread(host.wait)
    if host.stdin is not None:
        host.stdin.close()




async def self_check(marks: int, interval: float) -> None:
    """Xvfb, broker and painter: the painter fills the screen with the next marker colour every
    ``interval`` seconds (so the marker's centre shows it); print latency, fps and bitrate."""
    from bench.report import percentile
    from bench.stream_marks import MARKER_PALETTE, frames_per_second, match_latencies
    from bench.stream_receiver import paint_marks
    from tests.support.screen_painter import PainterProcess
    from tests.support.xvfb import XvfbServer

    width, height = 1920, 1080
    with (
        XvfbServer.start(width, height) as xvfb,
        BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker,
        PainterProcess(xvfb.env) as painter,
    ):
        painter.fill((0, 0, 0))
        async with chromium_receiver(broker, xvfb.env, width, height) as (receiver, _host_pid):
            await asyncio.sleep(2.0)  # past the encoder's coarse first frames
            bytes_before = await receiver.bytes_received()
            painted_marks = await paint_marks(painter, marks, interval)
            await asyncio.sleep(1.0)
            await receiver.flush()
            bytes_after = await receiver.bytes_received()
            snapshot = await receiver.latest_rgb()
            latencies, missed = match_latencies(painted_marks, receiver.frames, wall_clock=True)
            start, end = painted_marks[0].painted_wall, painted_marks[-1].painted_wall
            fps = frames_per_second(receiver.frames, start, end)
            in_browser = [
                (t.presented - t.received) * 1000 for t in receiver.timings
                if t.received is not None and start <= t.presented < end
            ]
            handed = [(t.presented - t.submitted) * 1000 for t in receiver.timings
                      if t.submitted is not None and start <= t.presented < end]
            sampling = [t.sample_ms for t in receiver.timings if start <= t.presented < end]
            methods = sorted({t.sampled_from for t in receiver.timings})
            counts = [t.presented_frames for t in receiver.timings if t.presented_frames is not None]
            x, y = marker_centre(width, height)
            last = MARKER_PALETTE[(marks - 1) % len(MARKER_PALETTE)]
            offset, uncertainty = await receiver.clock_offset()
            print(f"page clock - time.time(): {offset * 1000:+.2f} ms (+-{uncertainty * 1000:.2f} ms)")
            print(f"marks: {marks} every {interval * 1000:.0f} ms, matched {len(latencies)}, missed {missed}")
            if latencies:
                print(f"latency paint -> presented: p50 {percentile(latencies, 50):.1f} ms, "
                      f"p95 {percentile(latencies, 95):.1f} ms, max {max(latencies):.1f} ms")
            if in_browser:
                print(f"  of which last packet -> presented: p50 {percentile(in_browser, 50):.1f} ms, "
                      f"p95 {percentile(in_browser, 95):.1f} ms")
            if handed:
                print(f"  handed to the compositor -> callback's now: p50 {percentile(handed, 50):.1f} ms, "
                      f"min {min(handed):.1f}, max {max(handed):.1f} ms")
            if sampling:
                print(f"  marker pixel read: p50 {percentile(sampling, 50):.2f} ms, "
                      f"p95 {percentile(sampling, 95):.2f} ms per frame, read from {' and '.join(methods)}")
            print(f"frames presented with a callback: {fps:.1f} fps over {end - start:.1f} s")
            if counts:
                print(f"Chromium's presented-frame counter moved by {counts[-1] - counts[0]} over "
                      f"{len(counts) - 1} callbacks (larger: frames without a callback)")
            print(f"video payload: {(bytes_after - bytes_before) * 8 / 1000 / (end - start):.0f} kbit/s")
            print(f"video {receiver.video_size[0]}x{receiver.video_size[1]}; latest_rgb: {snapshot.shape} {snapshot.dtype}, "
                  f"marker centre {tuple(snapshot[y, x])} (last mark {last})")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.chromium_receiver``: the self-check."""
    import argparse

    parser = argparse.ArgumentParser(description="Self-check of the Chromium receiver of the screen-streaming benchmark")
    parser.add_argument("--marks", type=int, default=80, help="marker changes to paint (default 80)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between changes (default 0.25)")
    args = parser.parse_args(argv)
    if args.marks < 2 or not 0.02 <= args.interval <= 5:
        parser.error("--marks must be at least 2 and --interval between 0.02 and 5 seconds")
    asyncio.run(self_check(args.marks, args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
