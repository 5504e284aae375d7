"""What the screen-streaming benchmark asks of every receiver (aiortc, Chromium, VNC).

A receiver records a :class:`~bench.stream_marks.FrameSeen` for every frame it
gets (the marker's palette slot sampled at :func:`~bench.stream_marks.marker_centre`),
counts the bytes it took off the wire, and can hand over its newest frame as RGB
pixels for the sharpness comparison against the source screen.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bench.stream_marks import FrameSeen, Mark, marker_colour

if TYPE_CHECKING:
    from tests.support.screen_painter import PainterProcess


class StreamReceiver(Protocol):
    """One way of watching the remote screen, as the benchmark drives it."""

    name: str
    """Shown in the report, e.g. ``"Deskhand -> aiortc"`` or ``"x11vnc -> vncdotool"``."""
    wall_clock: bool
    """True when :attr:`frames` arrival times are ``time.time()`` (a browser), False for ``time.monotonic()``."""
    frames: list[FrameSeen]
    """Every frame received so far, in arrival order."""

    async def bytes_received(self) -> int:
        """Payload bytes received since the receiver started (RTP payload or RFB stream)."""
        ...

    async def latest_rgb(self) -> np.ndarray:
        """The newest frame as an (height, width, 3) uint8 RGB array at the source's resolution."""
        ...


async def paint_marks(painter: PainterProcess, count: int, interval: float) -> list[Mark]:
    """The receivers' self-checks: fill the whole screen with mark colours, one every ``interval`` s.

    A full-screen fill puts each mark's colour under the marker's centre too, so
    these marks match like the workload's.
    """
    marks: list[Mark] = []
    for index in range(count):
        painted = await asyncio.to_thread(painter.fill, marker_colour(index))
        # The painter's monotonic stamp on the wall clock (both clocks read back to back).
        marks.append(Mark(index, painted, painted + time.time() - time.monotonic()))
        await asyncio.sleep(max(0.0, painted + interval - time.monotonic()))
    return marks
