"""Screen capture as an aiortc video track.

The screen is grabbed inside :meth:`ScreenTrack.recv`, when the encoder asks
for the next frame, so frames never queue up behind a slow encoder: a late
frame is simply a fresher one. A frame is sent only when the screen changed
(the X server says so through DAMAGE, :mod:`host_client.damage`; the grab is
then compared with the last one), when the receiver asks for a keyframe, when
the encoder asks for one it had to defer (``StreamBudget.frame_wanted_at``), or
as a *refinement* frame: re-encoding the settled screen lets the encoder sharpen
what it blurred. Refinement comes :data:`REFINE_AFTER` after the last change (after
an isolated change it is the change's tail, which shows a lost change to the receiver) and, on
a narrow link, again and again, spending part of the budget (``StreamBudget.refine_interval``), while the encoder says
the last frame or the one before was capped (``StreamBudget.refining``), for at most
:data:`REFINE_FOR` seconds after the last change: each capped frame adds what
the link allows, and the picture is sharp again as soon as the link has carried
it. A static screen that is sharp costs nothing but a keep-alive frame every few
seconds.

Colour conversion (BGRA to I420) is libswscale's, straight from mss's buffer
without a copy, of the rows that changed since the last frame only
(:mod:`host_client.colour_conversion`: the grab is compared row by row anyway). Frame pacing and scale come from a
:class:`~peer.stream_budget.StreamBudget` that travels with each frame to the
encoder (``frame.opaque``, a :class:`~peer.stream_budget.FrameTag`), which reports back what the link carries.

The monitor is looked up on every frame, so switching monitors needs no new
track; while the user has not allowed viewing, the track sends black frames of
the same size instead of the screen.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from peer.regions_of_interest import MAX_REGIONS
from peer.screen_encoder import PARTIAL_AREA_SHARE
from peer.stream_budget import Box, FrameTag, StreamBudget
from protocol.waits import wait_until_set

from .colour_conversion import I420Converter
from .damage import DamageWatcher, open_damage_watcher

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
BLANK_INTERVAL = 1.0
"""Seconds between black frames while the user has not allowed viewing."""
REFINE_AFTER: tuple[float, ...] = (0.3,)
"""Seconds after the last change at which the settled screen is encoded again.

After motion (changes a moment apart) it sharpens the picture: x264
spends fewer bits per pixel on frames in fast motion, and one frame of the settled screen
brings text back to full quality. After an isolated change (a typed letter, a blinking
caret: coded at full quality already) it is the change's *tail*: a change is often one
packet, and when that packet is lost nothing after it would show the receiver a gap until
the keep-alive, 5 s later; the tail (a hundred bytes for an unchanged picture) shows it
within 0.3 s, so the receiver asks for the packet again (issue 19: over a link losing 2 %, a
colour change whose one packet was lost waited for the keep-alive without it). A keyframe the receiver asked for
gets its tail too: on a still screen its last packet, lost, showed no gap until the keep-alive
(H.264 main codes a plain screen's keyframe in a packet or two)."""
REFINE_FOR = 10.0
"""Seconds after the last change, or the last keyframe, during which capped frames are followed by
refinement frames (a keyframe on a screen still for longer, asked for after a loss or made for a new
frame cap, was left coarse: 22-34 dB at the end of two tests on a loaded machine).
At 1 Mbit/s a 1080p text screen is at full quality after about 2.5 s; the bound keeps a
picture x264 never stops touching up (noise) from costing the link for ever."""
BOX_GAP = 16
"""Rows (a macroblock) between two changes that are still one changed box (:func:`changed_boxes`)."""
NO_ROWS = np.empty(0, np.intp)
"""No changed row: the picture sent again."""
KEEPALIVE = 5.0
"""Seconds between frames of a static screen (receivers see the stream is alive)."""


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
        except Exception as exc:  # noqa: BLE001 - mss raises its own ScreenShotError and OSErrors
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

    def grab_pixels(self, monitor: Monitor) -> np.ndarray:
        """The monitor's pixels as a (height, width, 4) BGRA array over mss's own buffer (no copy)."""
        shot = self._grabber.grab(
            {"left": monitor.left, "top": monitor.top, "width": monitor.width, "height": monitor.height}
        )
        return np.frombuffer(shot.raw, dtype=np.uint8).reshape(shot.height, shot.width, 4)

    def close(self) -> None:
        try:
            self._grabber.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass


def changed_rows(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The indices of the rows that differ between two grabs of one size, in order (about 1 ms at 1080p)."""
    if previous.shape != current.shape:
        raise ValueError("changed rows compare two grabs of one size")
    differs = previous.view(np.uint32) != current.view(np.uint32)
    return np.flatnonzero(differs.any(axis=tuple(range(1, differs.ndim))))


def row_bands(rows: np.ndarray, *, gap: int = BOX_GAP, limit: int | None = None) -> list[tuple[int, int]]:
    """``rows`` (indices in order, as :func:`changed_rows` gives them) as bands (top, bottom excluded): rows closer
    than ``gap`` are one band; past ``limit`` bands, the closest are merged."""
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > gap)
    bands = [[int(rows[0]), 0]]
    for at in breaks:
        bands[-1][1] = int(rows[at]) + 1
        bands.append([int(rows[at + 1]), 0])
    bands[-1][1] = int(rows[-1]) + 1
    while limit is not None and len(bands) > max(1, limit):
        closest = min(range(len(bands) - 1), key=lambda i: bands[i + 1][0] - bands[i][1])
        bands[closest][1] = bands.pop(closest + 1)[1]
    return [(top, bottom) for top, bottom in bands]


def changed_boxes(previous: np.ndarray, current: np.ndarray, *, scale: float = 1.0, limit: int = MAX_REGIONS - 1,
                  rows: np.ndarray | None = None) -> tuple[Box, ...]:
    """Rectangles that cover every pixel that differs between two grabs of one size, one per band of changed
    rows (bands closer than :data:`BOX_GAP` rows are one; at most ``limit``, the closest merged), in the
    coordinates of the frame encoded at ``scale`` (rounded outwards). Empty when nothing changed.
    ``rows``: :func:`changed_rows` of the two, when known."""
    if previous.shape != current.shape:
        raise ValueError("changed boxes compare two grabs of one size")
    if rows is None:
        rows = changed_rows(previous, current)
    height, width = int(current.shape[0] * scale) & ~1, int(current.shape[1] * scale) & ~1
    boxes = []
    for top, bottom in row_bands(rows, limit=limit):
        differs = previous[top:bottom].view(np.uint32) != current[top:bottom].view(np.uint32)
        columns = np.flatnonzero(differs.any(axis=tuple(i for i in range(differs.ndim) if i != 1)))
        left, right = int(columns[0]), int(columns[-1]) + 1
        box = (math.floor(top * scale), min(height, math.ceil(bottom * scale)),
               math.floor(left * scale), min(width, math.ceil(right * scale)))
        if box[0] < box[1] and box[2] < box[3]:  # else only in the odd row or column the frame leaves out
            boxes.append(box)
    return tuple(boxes)


def blank_pixels(monitor: Monitor) -> np.ndarray:
    """Black pixels the size of ``monitor`` (what a technician sees while viewing is not allowed)."""
    return np.zeros((monitor.height & ~1, monitor.width & ~1, 3), dtype=np.uint8)


class ScreenTrack(MediaStreamTrack):
    """Frames of the selected monitor when it changes, at up to ``fps`` frames per second."""

    kind = "video"

    def __init__(
        self,
        monitor: Callable[[], Monitor],
        *,
        visible: Callable[[], bool] = lambda: True,
        fps: float = 60.0,
        screen: Screen | None = None,
        damage: DamageWatcher | Literal["auto"] | None = "auto",
        budget: StreamBudget | None = None,
    ) -> None:
        super().__init__()
        if not 0 < fps <= 120:
            raise ValueError("fps must be above 0 and at most 120")
        self._screen = screen or Screen()
        self._owns_screen = screen is None
        self._monitor = monitor
        self._visible = visible
        self.budget = budget or StreamBudget(max_fps=fps, min_fps=min(5.0, fps))
        self._damage = open_damage_watcher() if damage == "auto" else damage
        self._watching = False
        self._wake = asyncio.Event()
        self._keyframe_wanted = True  # the first frame is sent whatever the screen shows
        # One thread for every grab: mss and libswscale release the GIL, the event loop stays free.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="deskhand-capture")
        self._converter = I420Converter()  # the capture thread's alone
        self._started: float | None = None
        self._next_at = 0.0
        self._last_pts = -1
        self._last_raw: np.ndarray | None = None
        self._last_sent = float("-inf")
        self._refresh_at: list[float] = []
        self._last_change = float("-inf")
        self._blank: tuple[Monitor, np.ndarray] | None = None
        self.frames_sent = 0
        self.grabs = 0
        """Screen grabs so far (a static screen watched through DAMAGE makes none)."""

    @property
    def watches_damage(self) -> bool:
        """True when the X server reports changes; False when the track polls."""
        return self._damage is not None

    def keyframe_requested(self) -> None:
        """The receiver lost the picture: send a frame now, even if the screen is static."""
        self._keyframe_wanted = True
        self._wake.set()

    async def recv(self) -> av.VideoFrame:
        self._raise_if_stopped()
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            if self._started is None:
                self._started = now
            elif self._next_at > now:
                await asyncio.sleep(self._next_at - now)
            self._raise_if_stopped()
            monitor = self._monitor()
            if not self._visible():
                self._next_at = time.monotonic() + BLANK_INTERVAL
                self._last_raw = None
                return self._stamp(self._blank_for(monitor))
            reason = await self._next_reason()
            # Stopping wakes this wait (the viewer left): the capture thread is gone by now.
            self._raise_if_stopped()
            started = time.monotonic()
            interval = self.budget.interval()
            # Keep to the frame grid while the screen keeps changing (a late wake-up must not
            # cost a frame: 30 fps means 30), but start a new grid after a pause.
            slot = self._next_at if started - self._next_at < interval else started
            self._next_at = slot + interval
            frame = await loop.run_in_executor(self._worker, self._capture, monitor, reason)
            if frame is not None:
                return self._stamp(frame)

    def _raise_if_stopped(self) -> None:
        """End the stream the way aiortc expects (``MediaStreamError``, which it takes quietly) once
        :meth:`stop` ran; never hand a grab to the capture thread it shut down (a ``RuntimeError``
        that aiortc logs with its traceback on the end user's terminal)."""
        if self.readyState != "live":
            raise MediaStreamError

    async def _next_reason(self) -> str:
        """Wait until there is a reason to look at the screen: ``keyframe``, ``damage``, ``refresh`` or ``poll``."""
        while True:
            if self._keyframe_wanted:
                self._keyframe_wanted = False
                return "keyframe"
            if self._damage is None:
                return "poll"
            try:
                if self._damage.take():
                    return "damage"
            except Exception as exc:  # noqa: BLE001 - Xlib raises its own and socket errors
                log.warning("lost the X connection for damage events (%s); polling the screen instead", exc)
                self._stop_watching()
                return "poll"
            now = time.monotonic()
            due = self._refresh_due()
            if due <= now:
                if self._refresh_at and self._refresh_at[0] <= now:
                    self._refresh_at.pop(0)
                wanted_at = self.budget.frame_wanted_at
                if wanted_at is not None and wanted_at <= now:
                    self.budget.frame_wanted_at = None
                return "refresh"
            self._wake.clear()
            self._watch()
            await wait_until_set(self._wake, due - now)

    def reconsider(self) -> None:
        """The budget changed in a way that may bring the next refinement forward (the link's part set aside
        for the recording was released): work out when it is due again now. Waiting out the interval worked out
        under the squeezed target held a settled screen's keyframe back 0.6 s at 1 Mbit/s."""
        self._wake.set()

    @property
    def last_change(self) -> float:
        """When the screen last changed (seconds on the monotonic clock; -inf before the first picture)."""
        return self._last_change

    def _refresh_due(self) -> float:
        """When the settled screen is to be sent again: a keep-alive, a refinement after motion, the
        encoder's deferred keyframe, or (while the last frame was capped) the next frame slot."""
        due = [self._last_sent + KEEPALIVE]
        if self._refresh_at:
            due.append(self._refresh_at[0])
        if self.budget.frame_wanted_at is not None:
            due.append(self.budget.frame_wanted_at)
        # A keyframe starts the picture over (the receiver asked, or the encoder took a new cap): refined as a change is.
        since = max(self._last_change, self.budget.last_keyframe_at or float("-inf"))
        if self.budget.refining and self._last_sent - since < REFINE_FOR:
            # From the last whole frame: frames coded partially (typing on a coarse picture) leave the rest to it.
            refined_at = self._last_sent if self.budget.whole_frame_at is None else self.budget.whole_frame_at
            due.append(refined_at + self.budget.refine_interval())
        return min(due)

    def _watch(self) -> None:
        # The socket stays readable until Xlib reads it (in take()): stop watching once it
        # fired, or the loop would spin on it while a frame is being encoded.
        if self._damage is not None and not self._watching:
            asyncio.get_running_loop().add_reader(self._damage.fileno(), self._damaged)
            self._watching = True

    def _damaged(self) -> None:
        if self._damage is not None and self._watching:
            asyncio.get_running_loop().remove_reader(self._damage.fileno())
            self._watching = False
        self._wake.set()

    def _capture(self, monitor: Monitor, reason: str) -> av.VideoFrame | None:
        """Runs in the capture thread: the frame to send for ``reason``, or None when nothing changed."""
        now = time.monotonic()
        repeat = reason == "refresh" and self._last_raw is not None
        boxes: tuple[Box, ...] = ()
        rows: np.ndarray | None = None  # the rows that differ from the last grab sent (None: all, as far as known)
        if repeat:
            raw = self._last_raw
            rows = NO_ROWS
        else:
            raw = self._screen.grab_pixels(monitor)
            self.grabs += 1
            previous = self._last_raw
            if previous is not None and previous.shape == raw.shape:
                rows = changed_rows(previous, raw)
            changed = rows is None or rows.size > 0
            share = 1.0 if rows is None else rows.size / raw.shape[0]  # a scroll changes nearly all rows, typing a few
            if not changed and reason in ("damage", "poll"):
                return None  # drawn over with the same pixels, or a change on another monitor
            repeat = not changed
            if rows is not None and changed and self.budget.refining and share <= PARTIAL_AREA_SHARE:
                # The encoder may code only these while the rest of the picture is being refined.
                boxes = changed_boxes(previous, raw, scale=self.budget.scale, rows=rows)
            if changed:
                self._last_raw = raw
                self._last_change = now
            if changed or reason == "keyframe":
                self._refresh_at = [now + delay for delay in REFINE_AFTER]  # to sharpen, or as the frame's tail
        self._last_sent = now
        if repeat:
            self.budget.settled(now - self._last_change, now)
        frame = self._converter.convert(raw, self.budget.scale, None if rows is None else row_bands(rows))
        frame.opaque = FrameTag(self.budget, repeat=repeat, changed_share=0.0 if repeat else share,
                                still_seconds=now - self._last_change if repeat else 0.0, changed_boxes=boxes)
        return frame

    def _stamp(self, frame: av.VideoFrame) -> av.VideoFrame:
        assert self._started is not None
        # x264 refuses a timestamp that does not grow.
        pts = max(int((time.monotonic() - self._started) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return frame

    def _blank_for(self, monitor: Monitor) -> av.VideoFrame:
        if self._blank is None or self._blank[0] != monitor:
            self._blank = (monitor, blank_pixels(monitor))
        # A new frame each time: the encoder may still hold the previous one.
        return av.VideoFrame.from_ndarray(self._blank[1], format="rgb24")

    def _stop_watching(self) -> None:
        if self._damage is None:
            return
        if self._watching:
            try:
                asyncio.get_running_loop().remove_reader(self._damage.fileno())
            except (RuntimeError, OSError, ValueError):  # no loop any more, or the socket is gone
                pass
            self._watching = False
        self._damage.close()
        self._damage = None

    def stop(self) -> None:
        super().stop()
        self._wake.set()
        self._stop_watching()
        self._worker.shutdown(wait=False)
        if self._owns_screen:
            self._screen.close()
