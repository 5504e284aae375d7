"""The latency marker shared by the screen-streaming benchmark's workload and its receivers.

The workload (:mod:`bench.workload`) paints a small square, the *marker*, in a
fixed corner of the screen and changes its colour at known times; every receiver
(aiortc, Chromium, VNC) samples the marker's centre pixel in each frame it gets.
Matching the two timelines gives change-to-received latency for every mark,
whatever else the workload is doing on the screen at the time.

Marks cycle through :data:`MARKER_PALETTE` in order, so a colour comes back only
every ``len(MARKER_PALETTE)`` marks: the first frame that shows mark ``k``'s
colour after mark ``k`` was painted is the frame that carried it.

Pure logic, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MARKER_SIZE = 48
"""Side of the marker square, in screen pixels."""
MARKER_MARGIN = 16
"""Gap between the marker and the screen's bottom-right corner."""

MARKER_PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
)
"""Marker colours, far apart after lossy coding and 4:2:0 chroma subsampling."""

MATCH_TOLERANCE = 48
"""Largest per-channel difference at which a sampled pixel still counts as a palette colour."""


def marker_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The marker's (left, top, right, bottom) on a ``width`` x ``height`` screen."""
    right, bottom = width - MARKER_MARGIN, height - MARKER_MARGIN
    return right - MARKER_SIZE, bottom - MARKER_SIZE, right, bottom


def marker_centre(width: int, height: int) -> tuple[int, int]:
    """The pixel receivers sample: the middle of :func:`marker_box`."""
    left, top, right, bottom = marker_box(width, height)
    return (left + right) // 2, (top + bottom) // 2


def marker_colour(index: int) -> tuple[int, int, int]:
    """The colour of mark number ``index`` (0, 1, 2, ...)."""
    return MARKER_PALETTE[index % len(MARKER_PALETTE)]


def palette_slot(rgb: Sequence[int]) -> int:
    """Which :data:`MARKER_PALETTE` entry ``rgb`` shows, or -1 if none is close enough."""
    best, best_distance = -1, MATCH_TOLERANCE + 1
    for slot, colour in enumerate(MARKER_PALETTE):
        distance = max(abs(int(a) - b) for a, b in zip(rgb, colour, strict=True))
        if distance < best_distance:
            best, best_distance = slot, distance
    return best


@dataclass(frozen=True)
class Mark:
    """One marker change: its number and when the X server had drawn it."""

    index: int
    painted: float
    """``time.monotonic()`` (CLOCK_MONOTONIC) once the change was in the framebuffer."""
    painted_wall: float
    """``time.time()`` at the same moment, for receivers that only know wall-clock time (browsers)."""


@dataclass(frozen=True)
class FrameSeen:
    """A frame as a receiver got it: when, and which palette slot the marker showed (-1: none)."""

    arrived: float
    slot: int


def match_latencies(marks: Sequence[Mark], frames: Sequence[FrameSeen], *, wall_clock: bool = False) -> tuple[list[float], int]:
    """Latency in milliseconds of every mark some frame showed, and how many marks no frame showed.

    ``frames`` must be in arrival order. With ``wall_clock`` the frames' arrival
    times are ``time.time()`` values and are compared with :attr:`Mark.painted_wall`.
    """
    latencies: list[float] = []
    missed = 0
    start = 0
    slots = len(MARKER_PALETTE)
    times = [m.painted_wall if wall_clock else m.painted for m in marks]
    for n, mark in enumerate(marks):
        painted = times[n]
        # The same colour is painted again ``slots`` marks later: a frame after that proves nothing.
        until = times[n + slots] if n + slots < len(marks) else float("inf")
        while start < len(frames) and frames[start].arrived < painted:
            start += 1
        for frame in frames[start:]:
            if frame.arrived >= until:
                missed += 1
                break
            if frame.slot == mark.index % slots:
                latencies.append((frame.arrived - painted) * 1000)
                break
        else:
            missed += 1
    return latencies, missed


def frames_per_second(frames: Sequence[FrameSeen], start: float, end: float) -> float:
    """Frames that arrived in [start, end) per second."""
    if end <= start:
        raise ValueError("end must be after start")
    return sum(1 for f in frames if start <= f.arrived < end) / (end - start)
