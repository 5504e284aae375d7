"""Recording uplink: how many bits a second the recording's uploads take from the user's uplink, per phase.

Starts Xvfb (1920x1080x24) with the scripted desktop of ``bench/workload.py`` and
records it with :class:`~host_client.recorder.SegmentRecorder` at the policy's 2 fps
through phases (still, typing, scrolling, still). Then every spooled segment is
uploaded twice, in order, by the host's :class:`~host_client.recorder.RecordingUploader`
to a real broker on 127.0.0.1, each through a TCP relay that counts the bytes the
host sends (HTTP requests, headers included; TCP/IP headers not):

* *whole*: every segment's bytes, as hosts did before repeats (``by_reference=False``);
* *by reference*: a segment that copies an earlier one's packets goes as a repeat
  (``PUT .../recording/{index}/repeat``), one encoded after an earlier one's keyframe
  by its own frames (``PUT .../recording/{index}/continue``), the rest whole.

The whole recording is made three times: *before* (full quality, every changing
segment with a keyframe of its own, as hosts did before continuations), *normal* (no
live stream finds the link congested: full quality, continuations) and *limited* (the
live stream finds it congested throughout, so segments are encoded at
:data:`~host_client.recording_quality.LIMITED_BITRATE`).

A segment belongs to the phase its midpoint falls in; a phase's figure is its
segments' bytes over their recorded duration, in bit/s. Uploading after recording
(one segment at a time) makes the attribution exact; the bytes are the same as
uploading while recording.

Legibility: in the middle of each phase two seconds of the screen are grabbed (four
frames, as the recorder grabs them). The last second is encoded as a segment by the
recorder's :class:`~host_client.recorder.SegmentWriter` at each mode's bitrate, once
with a keyframe of its own and once continued from a segment of the first second;
the figure is the lower luma PSNR of its two decoded frames against the grabbed
screen (the Y plane the encoder was given). Small text stays readable from about 30 dB.

Run: ``.venv/bin/python -m bench.recording_uplink [--seconds 20] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from bench.report import machine_conditions, publish
from bench.stream_figures import psnr
from bench.workload import WorkloadProcess
from host_client.capture import Screen
from host_client.colour_conversion import to_i420
from host_client.recorder import EncodedSegment, RecordingUploader, SegmentRecorder, SegmentWriter
from host_client.recording_quality import FULL_BITRATE, LIMITED_BITRATE
from protocol.cli import number_in_range
from tests.support.api import bearer, paired_session
from tests.support.broker import BrokerProcess
from tests.support.xvfb import XvfbServer

FPS = 2.0
PHASES = (("still", "static"), ("typing", "typing"), ("scrolling", "scrolling"), ("still after scrolling", "static"))
"""(label, bench.workload phase) in the order recorded."""
GRABBED = 4
"""Frames of each phase's screen grabbed for legibility: two seconds at the recorder's frame rate."""
SETTLE = 2.0
"""Seconds of a still screen recorded before the first phase (the first segment is encoded)."""
MODES = {"before": (FULL_BITRATE, False), "normal": (FULL_BITRATE, True), "limited": (LIMITED_BITRATE, True)}
"""Each recording mode: the bitrate its segments are encoded at, and whether they continue from earlier keyframes."""
WAYS = ("whole", "by reference")


class CountingRelay:
    """A TCP relay on 127.0.0.1 in front of ``port`` that counts the bytes clients send through it."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.sent = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._connections: list[asyncio.Task[object]] = []

    async def start(self) -> int:
        """Start listening; the relay's port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end the connections still open (kept alive by the clients' pools)."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self._port)
        self._writers += [client_out, broker_out]
        task = asyncio.current_task()
        if task is not None:
            self._connections.append(task)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, count: bool) -> None:
            try:
                while piece := await source.read(65536):
                    if count:
                        self.sent += len(piece)
                    sink.write(piece)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(client_in, broker_out, True), pipe(broker_in, client_out, False))


@dataclass
class PhaseBytes:
    """What one phase's segments cost each way of uploading, in one recording mode."""

    seconds: float = 0.0
    segments: int = 0
    repeated: int = 0
    continued: int = 0
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WAYS, 0))

    def kbits(self, way: str) -> float:
        """The phase's uplink in kbit/s, uploading ``way``."""
        return 8 * self.sent[way] / self.seconds / 1000


@dataclass
class Recorded:
    """One recording of the phases: each phase's (name, start, end) on the recorder's offset clock (s),
    and one second of each phase's screen (BGRA grabs at the recorder's frame rate)."""

    windows: list[tuple[str, float, float]] = field(default_factory=list)
    screens: dict[str, list[np.ndarray]] = field(default_factory=dict)


def record(display_env: dict[str, str], spool: Path, seconds: float, *, limited: bool, continuations: bool) -> Recorded:
    """Record the phases into ``spool``, the live stream congested throughout when ``limited``."""
    os.environ["DISPLAY"] = display_env["DISPLAY"]
    recorded = Recorded()
    with WorkloadProcess(display_env) as workload, ThreadPoolExecutor(1) as phases:
        screen = Screen()
        monitor = screen.monitors()[0]
        zero = time.monotonic()
        recorder = SegmentRecorder(spool, lambda: monitor, lambda: True, fps=FPS,
                                   link_congested=(lambda: True) if limited else None, continuations=continuations)
        recorder.start()
        try:
            time.sleep(SETTLE)
            for label, phase in PHASES:
                running = phases.submit(workload.phase, phase, seconds)  # it blocks: the screen is grabbed meanwhile
                time.sleep(seconds / 2 - 1)  # mid-phase: two seconds of the screen, as the recorder grabs it
                recorded.screens[label] = []
                for _ in range(GRABBED):
                    recorded.screens[label].append(screen.grab_pixels(monitor).copy())
                    time.sleep(1 / FPS)
                done = running.result()
                recorded.windows.append((label, done.start - zero, done.end - zero))
        finally:
            recorder.stop()
            screen.close()
    if recorder.error:
        raise RuntimeError(recorder.error)
    return recorded


def legibility(screens: list[np.ndarray], bitrate: int, *, continued: bool) -> float | None:
    """The lower luma PSNR (dB) of the second half of ``screens`` encoded as one segment at ``bitrate`` and
    decoded, against them; ``continued``: after the keyframe of a segment of the first half (None when the
    recorder would not continue: the screen moved too far, or the encoder made other keyframe bytes)."""
    half = len(screens) // 2
    reference = None
    if continued:
        before = SegmentWriter(FPS, screens[0], None, bitrate=bitrate)
        for n, pixels in enumerate(screens[:half]):
            before.add(pixels, round(n * 1000 / FPS))
        reference = EncodedSegment(screens[0], before.finish(), 0, bitrate, before.keyframe)
    screens = screens[half:]
    writer = SegmentWriter(FPS, screens[0], None, bitrate=bitrate, reference=reference)
    for n, pixels in enumerate(screens):
        writer.add(pixels, round(n * 1000 / FPS))
    data = writer.finish()
    if continued and writer.continued is None:
        return None
    with av.open(io.BytesIO(data)) as container:
        decoded = [frame.to_ndarray(format="yuv420p") for frame in container.decode(video=0)]
    if len(decoded) != len(screens):
        raise RuntimeError(f"{len(screens)} frames encoded, {len(decoded)} decoded")
    return min(psnr(luma_plane(got), luma_plane(to_i420(pixels).to_ndarray()))
               for got, pixels in zip(decoded, screens, strict=True))


def decibels(value: float | None) -> str:
    """A PSNR for the table; "own keyframe" where the recorder would not continue."""
    return "own keyframe" if value is None else f"{value:.1f} dB"


def luma_plane(yuv420p: np.ndarray) -> np.ndarray:
    """The Y plane of a yuv420p frame as PyAV lays it out (Y rows, then U and V)."""
    return yuv420p[: yuv420p.shape[0] * 2 // 3]


def phase_of(windows: list[tuple[str, float, float]], moment: float) -> str | None:
    for name, start, end in windows:
        if start <= moment < end:
            return name
    return None


async def upload_each(broker: BrokerProcess, spool: Path, work: Path,
                      cost: Callable[[dict[str, object], str, int], None]) -> None:
    """Upload the spool's segments one at a time, whole and by reference; ``cost(meta, way, bytes)`` for each."""
    relay = CountingRelay(int(broker.base_url.rsplit(":", 1)[1]))
    relay_port = await relay.start()
    admin = bearer(broker.login())
    uploaders = {}
    for way in WAYS:
        session_id, token = paired_session(broker, admin)
        folder = work / way
        folder.mkdir()
        uploaders[way] = RecordingUploader(f"http://127.0.0.1:{relay_port}", token, session_id, folder,
                                           by_reference=way == "by reference")
    try:
        for marker in sorted(spool.glob("*.json")):
            meta = json.loads(marker.read_text())
            for way, uploader in uploaders.items():
                for part in (marker.with_suffix(".webm"), marker.with_suffix(".tail"), marker):
                    if part.exists():
                        shutil.copy(part, work / way / part.name)
                before = relay.sent
                if not await uploader.drain(30):
                    raise RuntimeError(f"segment {meta['index']} was not uploaded {way}")
                cost(meta, way, relay.sent - before)
    finally:
        await relay.close()


def measure(xvfb: XvfbServer, mode: str, seconds: float) -> tuple[dict[str, PhaseBytes], dict[str, list[np.ndarray]]]:
    """Record the phases in ``mode`` and upload them: each phase's bytes, and one second of its screen."""
    phases: dict[str, PhaseBytes] = {}
    with tempfile.TemporaryDirectory() as folder:
        spool, work = Path(folder) / "spool", Path(folder) / "upload"
        work.mkdir()
        bitrate, continuations = MODES[mode]
        recorded = record(xvfb.env, spool, seconds, limited=bitrate != FULL_BITRATE, continuations=continuations)

        def cost(meta: dict[str, object], way: str, sent: int) -> None:
            offset, duration = int(str(meta["offset_ms"])) / 1000, int(str(meta["duration_ms"])) / 1000
            name = phase_of(recorded.windows, offset + duration / 2)
            if name is None:
                return
            figures = phases.setdefault(name, PhaseBytes())
            figures.sent[way] += sent
            if way == "whole":
                figures.seconds += duration
                figures.segments += 1
                figures.repeated += meta.get("repeats") is not None
                figures.continued += meta.get("continues") is not None

        with BrokerProcess.start() as broker:
            asyncio.run(upload_each(broker, spool, work, cost))
    return phases, recorded.screens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=number_in_range(float, 5, 600, "seconds"), default=20.0,
                        help="seconds of each phase (default 20)")
    parser.add_argument("--write-docs", action="store_true", help="replace this section's figures in docs/benchmarks.md")
    args = parser.parse_args()
    with XvfbServer.start(1920, 1080) as xvfb:
        measured = {mode: measure(xvfb, mode, args.seconds) for mode in MODES}
    before, screens = measured["before"]
    normal, _ = measured["normal"]
    limited, _ = measured["limited"]
    rows = ["| phase | seconds recorded | segments (repeats before; repeats, continued now) | uplink, every segment whole (before) | "
            "uplink, repeats (before) | uplink, repeats and continuations | uplink, link limited | "
            "luma PSNR, full: own keyframe / continued | luma PSNR, limited: own keyframe / continued |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, figures in before.items():
        now, held = normal.get(name), limited.get(name)
        legible = {bitrate: " / ".join(decibels(legibility(screens[name], bitrate, continued=continued))
                                       for continued in (False, True))
                   for bitrate in (FULL_BITRATE, LIMITED_BITRATE)}
        rows.append(f"| {name} | {figures.seconds:.0f} s | {figures.segments} ({figures.repeated}; "
                    f"{now.repeated if now else 0}, {now.continued if now else 0}) "
                    f"| {figures.kbits('whole'):.1f} kbit/s | {figures.kbits('by reference'):.1f} kbit/s "
                    f"| {now.kbits('by reference') if now else float('nan'):.1f} kbit/s "
                    f"| {held.kbits('by reference') if held else float('nan'):.1f} kbit/s "
                    f"| {legible[FULL_BITRATE]} | {legible[LIMITED_BITRATE]} |")
    conditions = [*machine_conditions(),
                  f"screen: Xvfb 1920x1080x24, bench/workload.py's desktop; recorder at {FPS:g} fps, 1 s segments",
                  f"phases of {args.seconds:g} s: {', '.join(label for label, _ in PHASES)} (after {SETTLE:g} s still; "
                  "typing ~12 characters a second, scrolling ~60 lines a second)",
                  f"modes: before (full quality, {FULL_BITRATE // 1000} kbit/s VP8, no continuations), normal (full "
                  f"quality, continuations), link limited (the live stream congested throughout: "
                  f"{LIMITED_BITRATE // 1000} kbit/s, continuations), each recorded once",
                  "segments: in the before recording; repeats and continued ones in the normal one",
                  "bytes: what the host sends the broker (HTTP, headers included) through a counting TCP relay, plain HTTP",
                  "luma PSNR: one second of each phase's screen encoded as a segment with its own keyframe, and continued "
                  "from a segment of the second before (\"own keyframe\": the recorder would not continue, the screen "
                  "moved too far); the lower of its two frames"]
    publish("recording_uplink", conditions, "\n".join(rows), write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
