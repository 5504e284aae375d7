"""Screen capture as an aiortc video track.

The screen is grabbed inside :meth:`ScreenTrack.recv`, when the encoder asks
for the next frame, so frames never queue up behind a slow encoder: a late
frame is simply a fresher one. The monitor is looked up on every frame, so
switching monitors needs no new track; while the user has not allowed viewing,
the track sends black frames of the same size instead of the screen.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
BLANK_INTERVAL = 1.0
"""Seconds between black frames while the user has not allowed viewing."""


class CaptureError(RuntimeError):
    """The screen cannot be captured; the message names the likely fix."""


@dataclass(frozen=True)
class Monitor:
    """One screen area as mss reports it; ``index`` counts from 1."""

    index: int
    left: int
    top: int
    width: int
    height: int


class Screen:
    """The desktop's monitors and a grabber for them (mss)."""

    def __init__(self) -> None:
        import mss  # imported late: it needs a display server at import on some platforms

        factory = getattr(mss, "MSS", None) or mss.mss
        try:
            self._grabber: Any = factory()
        except Exception as exc:  # mss raises its own ScreenShotError and OSErrors
            raise CaptureError(
                f"cannot open the screen ({exc}); run this in a desktop session, or set DISPLAY"
            ) from None

    def monitors(self) -> list[Monitor]:
        """Every monitor (mss's entry 0, the union of all, is left out)."""
        return [
            Monitor(i, m["left"], m["top"], m["width"], m["height"])
            for i, m in enumerate(self._grabber.monitors)
            if i > 0
        ]

    def grab(self, monitor: Monitor) -> av.VideoFrame:
        shot = self._grabber.grab(
            {"left": monitor.left, "top": monitor.top, "width": monitor.width, "height": monitor.height}
        )
        pixels = np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        if shot.height & 1 or shot.width & 1:  # yuv420p needs even dimensions
            pixels = np.ascontiguousarray(pixels[: shot.height & ~1, : shot.width & ~1])
        return av.VideoFrame.from_ndarray(pixels, format="bgra")

    def close(self) -> None:
        try:
            self._grabber.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass


def blank_pixels(monitor: Monitor) -> np.ndarray:
    """Black pixels the size of ``monitor`` (what a technician sees while viewing is not allowed)."""
    return np.zeros((monitor.height & ~1, monitor.width & ~1, 3), dtype=np.uint8)


class ScreenTrack(MediaStreamTrack):
    """Frames of the selected monitor at up to ``fps`` frames per second."""

    kind = "video"

    def __init__(
        self,
        monitor: Callable[[], Monitor],
        *,
        visible: Callable[[], bool] = lambda: True,
        fps: float = 30.0,
        screen: Screen | None = None,
    ) -> None:
        super().__init__()
        if not 0 < fps <= 120:
            raise ValueError("fps must be above 0 and at most 120")
        self._screen = screen or Screen()
        self._owns_screen = screen is None
        self._monitor = monitor
        self._visible = visible
        self._interval = 1.0 / fps
        self._started: float | None = None
        self._next_at = 0.0
        self._blank: tuple[Monitor, np.ndarray] | None = None
        self.frames_sent = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._started is None:
            self._started = self._next_at = now
        elif self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        visible = self._visible()
        # Skip missed slots rather than bursting to catch up after a slow frame; a
        # blank stream (viewing not allowed) needs only a frame a second.
        self._next_at = max(self._next_at + (self._interval if visible else BLANK_INTERVAL), time.monotonic())
        monitor = self._monitor()
        frame = self._screen.grab(monitor) if visible else self._blank_for(monitor)
        frame.pts = int((time.monotonic() - self._started) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return frame

    def _blank_for(self, monitor: Monitor) -> av.VideoFrame:
        if self._blank is None or self._blank[0] != monitor:
            self._blank = (monitor, blank_pixels(monitor))
        # A new frame each time: the encoder may still hold the previous one.
        return av.VideoFrame.from_ndarray(self._blank[1], format="rgb24")

    def stop(self) -> None:
        super().stop()
        if self._owns_screen:
            self._screen.close()
