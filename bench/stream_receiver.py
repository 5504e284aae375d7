"""What the screen-streaming benchmark asks of every receiver (aiortc, Chromium, VNC).

A receiver records a :class:`~bench.stream_marks.FrameSeen` for every frame it
gets (the marker's palette slot sampled at :func:`~bench.stream_marks.marker_centre`),
counts the bytes it took off the wire, and can hand over its newest frame as RGB
pixels for the sharpness comparison against the source screen.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from bench.stream_marks import FrameSeen


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
