"""Reading a pixel of a decoded frame cheaply, waiting for a colour to show up, and keeping
every frame's luma to compare with the screen afterwards.

Used by the benchmarks; pure functions over frames, no I/O.
"""

from __future__ import annotations

import asyncio

import av
import numpy as np


def sample_rgb(frame: av.VideoFrame, x: int, y: int) -> tuple[int, int, int]:
    """The RGB colour at (x, y) of a yuv420p frame, without converting the frame.

    Uses the BT.601 limited-range matrix, which is what libswscale applies by
    default on the sending side.
    """
    if frame.format.name != "yuv420p":
        rgb = frame.to_ndarray(format="rgb24")
        r, g, b = rgb[y, x]
        return int(r), int(g), int(b)
    planes = frame.planes
    luma = np.frombuffer(planes[0], np.uint8)[y * planes[0].line_size + x]
    u = np.frombuffer(planes[1], np.uint8)[(y // 2) * planes[1].line_size + x // 2]
    v = np.frombuffer(planes[2], np.uint8)[(y // 2) * planes[2].line_size + x // 2]
    c, d, e = 1.164 * (int(luma) - 16), int(u) - 128, int(v) - 128
    r, g, b = (int(max(0, min(255, round(ch)))) for ch in (c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d))
    return r, g, b


def close_to(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(p - q) <= tolerance for p, q in zip(a, b, strict=True))


class ColourProbe:
    """Records when a frame first shows an expected colour at one point.

    Install :meth:`on_frame` as the view's frame hook, call :meth:`expect`
    before changing the screen, then ``await`` :meth:`seen`.
    """

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y
        self._expected: tuple[int, int, int] | None = None
        self._seen_at: float | None = None
        self._event = asyncio.Event()

    def expect(self, colour: tuple[int, int, int]) -> None:
        self._expected, self._seen_at = colour, None
        self._event.clear()

    def on_frame(self, frame: av.VideoFrame, arrived: float) -> None:
        if self._expected is None or self._seen_at is not None:
            return
        if close_to(sample_rgb(frame, self.x, self.y), self._expected):
            self._seen_at = arrived
            self._event.set()

    async def seen(self, timeout: float) -> float:
        """The arrival time of the first frame that showed the colour."""
        await asyncio.wait_for(self._event.wait(), timeout)
        assert self._seen_at is not None
        return self._seen_at


class LumaFrames:
    """Every received frame's luma with its arrival time (a ``RemoteView`` ``on_frame`` hook), kept
    to be compared with the screen afterwards."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []

    def on_frame(self, frame: av.VideoFrame, arrived: float) -> None:
        self.frames.append((arrived, frame.to_ndarray(format="gray")))
