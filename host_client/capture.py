"""Screen capture as an aiortc video track.

The screen is grabbed inside :meth:`ScreenTrack.recv`, when the encoder asks
for the next frame, so frames never queue up behind a slow encoder: a late
frame is simply a fresher one.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)


class CaptureError(RuntimeError):
    """The screen cannot be captured; the message names the likely fix."""


@dataclass(frozen=True)
class Monitor:
    """One screen as mss reports it (index 1 is the primary)."""

    index: int
    left: int
    top: int
    width: int
    height: int


def open_screen() -> Any:
    """An mss grabber, with a clear error when there is no display."""
    import mss  # imported late: it needs a display server at import on some platforms

    try:
        return mss.mss()
    except Exception as exc:  # mss raises its own ScreenShotError and OSErrors
        raise CaptureError(
            f"cannot open the screen ({exc}); run this in a desktop session, or set DISPLAY"
        ) from None


def list_monitors(grabber: Any) -> list[Monitor]:
    return [
        Monitor(i, m["left"], m["top"], m["width"], m["height"])
        for i, m in enumerate(grabber.monitors)
        if i > 0
    ]


class ScreenTrack(MediaStreamTrack):
    """Frames of one monitor at up to ``fps`` frames per second."""

    kind = "video"

    def __init__(self, monitor: int = 1, fps: float = 30.0) -> None:
        super().__init__()
        if fps <= 0 or fps > 120:
            raise ValueError("fps must be between 0 and 120")
        self._grabber = open_screen()
        monitors = list_monitors(self._grabber)
        if not 1 <= monitor <= len(monitors):
            raise CaptureError(f"monitor {monitor} does not exist; this machine has {len(monitors)}")
        self._monitor = monitors[monitor - 1]
        self._interval = 1.0 / fps
        self._started: float | None = None
        self._next_at = 0.0
        self.frames_sent = 0

    @property
    def monitor(self) -> Monitor:
        return self._monitor

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._started is None:
            self._started = self._next_at = now
        elif self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        # Skip missed slots rather than bursting to catch up after a slow frame.
        self._next_at = max(self._next_at + self._interval, time.monotonic())
        frame = self._grab()
        frame.pts = int((time.monotonic() - self._started) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return frame

    def _grab(self) -> av.VideoFrame:
        m = self._monitor
        shot = self._grabber.grab({"left": m.left, "top": m.top, "width": m.width, "height": m.height})
        pixels = np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        # yuv420p needs even dimensions.
        if shot.height & 1 or shot.width & 1:
            pixels = np.ascontiguousarray(pixels[: shot.height & ~1, : shot.width & ~1])
        return av.VideoFrame.from_ndarray(pixels, format="bgra")

    def stop(self) -> None:
        super().stop()
        try:
            self._grabber.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass
