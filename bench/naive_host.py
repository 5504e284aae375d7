"""``deskhand-host`` with the screen pipeline aiortc gives with its defaults: the benchmark's baseline.

Run as ``python -m bench.naive_host join CODE --broker URL ...`` (the same
arguments as ``deskhand-host``). Everything but the screen pipeline is the real
host (joining, consent, signalling, data channels). The pipeline is swapped by
monkeypatching, in this process only and before anything connects:

* ``host_client.session.ScreenTrack`` becomes :class:`NaiveScreenTrack`, a copy
  of the capture track before issue 9's tuning (``git show 9fb4430:host_client/capture.py``):
  a full-screen mss grab and ``av.VideoFrame.from_ndarray`` every 1/fps s
  (30 by default, :data:`NAIVE_FPS`, as before tuning), whether the screen changed or not; no damage detection;
* ``host_client.session.add_screen_sender`` becomes :func:`naive_add_screen_sender`:
  ``addTransceiver`` with aiortc's default codec order (VP8 first) and aiortc's
  own encoders, Deskhand's aiortc hooks switched off.

The receiver side of the naive pipeline (the benchmark's RemoteView) must run
without Deskhand's receiver hook as well: :func:`receiver_hooks_off`.
:data:`HOST_HOOKS` and :func:`receiver_hooks_off` are the one place that names
the hooks; :func:`check_hooks_off` fails loudly if any is still on.
Bench-only code: nothing in the product imports this module.
"""

from __future__ import annotations

import asyncio
import fractions
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from peer import aiortc_hooks

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
BLANK_INTERVAL = 1.0
"""Seconds between black frames while the user has not allowed viewing."""
NAIVE_FPS = "30"
"""The frame rate the naive host grabs at unless ``--fps`` is given: the pre-tuning host's default."""

# --- THE place that switches Deskhand's aiortc hooks off for the naive pipeline -------------
HOST_HOOKS: tuple[tuple[Callable[[bool], None], Callable[[], bool]], ...] = (
    (aiortc_hooks.use_screen_encoder, aiortc_hooks.screen_encoder_active),
    (aiortc_hooks.forward_keyframe_requests, aiortc_hooks.keyframe_requests_forwarded),
    (aiortc_hooks.quick_sctp_retransmits, aiortc_hooks.sctp_retransmits_quick),
    (aiortc_hooks.pace_video_senders, aiortc_hooks.video_senders_paced),
    (aiortc_hooks.report_receiver_losses, aiortc_hooks.receiver_losses_reported),
)
"""(switch, is-on) of every sender-side hook. ``gather_loopback_only`` stays: it only picks addresses."""
RECEIVER_HOOKS: tuple[tuple[Callable[[bool], None], Callable[[], bool]], ...] = (
    (aiortc_hooks.complete_frames_on_marker, aiortc_hooks.marker_frames_active),
    (aiortc_hooks.offer_h264_main, aiortc_hooks.h264_main_offered),
    (aiortc_hooks.quick_sctp_retransmits, aiortc_hooks.sctp_retransmits_quick),
    (aiortc_hooks.recover_losses_on_a_timer, aiortc_hooks.losses_recovered_on_a_timer),
)
"""(switch, is-on) of every receiver-side hook."""


def check_hooks_off(hooks: tuple[tuple[Callable[[bool], None], Callable[[], bool]], ...]) -> None:
    """Raise if any of ``hooks`` is on: a naive figure measured with a Deskhand hook would be wrong."""
    on = [switch.__name__ for switch, active in hooks if active()]
    if on:
        raise RuntimeError(f"the naive pipeline runs with Deskhand's aiortc hooks on: {', '.join(on)}")


@contextmanager
def receiver_hooks_off() -> Iterator[None]:
    """While inside, RemoteViews in this process answer with aiortc's own receiver (no hook).

    RemoteView switches its hooks on for every offer it answers, so each switch of
    :data:`RECEIVER_HOOKS` it calls is replaced for the duration, and put back afterwards.
    """
    import tech_console.remote_view as remote_view

    # remote_view imports the switches without re-exporting them; its imported names are the ones RemoteView calls.
    originals = {switch.__name__: switch for switch, _active in RECEIVER_HOOKS if hasattr(remote_view, switch.__name__)}
    try:
        for name, switch in originals.items():
            switch(False)
            setattr(remote_view, name, lambda enabled, switch=switch: switch(False))
        yield
    finally:
        for name, switch in originals.items():
            setattr(remote_view, name, switch)


# ---------------------------------------------------------------------------------------------


class NaiveScreenTrack(MediaStreamTrack):
    """The selected monitor, grabbed whole every 1/``fps`` s (the pre-issue-9 ScreenTrack's logic).

    Takes the tuned ScreenTrack's constructor arguments; ``screen`` (the host's
    monitor lister) is not used for grabbing: this track has its own mss grabber,
    as the old one grabbed through the old ``Screen.grab``.
    """

    kind = "video"

    def __init__(
        self,
        monitor: Callable[[], Any],
        *,
        visible: Callable[[], bool] = lambda: True,
        fps: float = 30.0,
        **_tuned_only: Any,
    ) -> None:
        super().__init__()
        if not 0 < fps <= 120:
            raise ValueError("fps must be above 0 and at most 120")
        import mss  # late, as in the host: it needs a display

        self._grabber: Any = (getattr(mss, "MSS", None) or mss.mss)()
        self._monitor = monitor
        self._visible = visible
        self._interval = 1.0 / fps
        self._started: float | None = None
        self._next_at = 0.0
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
        # As before tuning: skip missed slots rather than burst; a blank stream needs a frame a second.
        self._next_at = max(self._next_at + (self._interval if visible else BLANK_INTERVAL), time.monotonic())
        frame = self._grab(self._monitor(), blank=not visible)
        frame.pts = int((time.monotonic() - self._started) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return frame

    def _grab(self, monitor: Any, *, blank: bool) -> av.VideoFrame:
        if blank:
            return av.VideoFrame.from_ndarray(
                np.zeros((monitor.height & ~1, monitor.width & ~1, 3), dtype=np.uint8), format="rgb24"
            )
        shot = self._grabber.grab(
            {"left": monitor.left, "top": monitor.top, "width": monitor.width, "height": monitor.height}
        )
        pixels = np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        if shot.height & 1 or shot.width & 1:  # yuv420p needs even dimensions
            pixels = np.ascontiguousarray(pixels[: shot.height & ~1, : shot.width & ~1])
        return av.VideoFrame.from_ndarray(pixels, format="bgra")

    def stop(self) -> None:
        super().stop()
        try:
            self._grabber.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass


def naive_add_screen_sender(pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
    """aiortc's defaults: no codec preference (VP8 first), aiortc's encoders, no hooks."""
    for switch, _active in HOST_HOOKS:
        switch(False)
    check_hooks_off(HOST_HOOKS)
    pc.addTransceiver(track, direction="sendonly")


def install() -> None:
    """Swap the host's screen pipeline for the naive one (this process only)."""
    import host_client.session as session

    # session imports ScreenTrack without re-exporting it (the name its sessions build their track from),
    # and the naive track is deliberately not a ScreenTrack.
    session.ScreenTrack = NaiveScreenTrack  # type: ignore[attr-defined, assignment]  # not re-exported; not a ScreenTrack on purpose
    session.add_screen_sender = naive_add_screen_sender


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # deskhand-host's default is now higher; the naive pipeline keeps the old one.
    if args[:1] in (["join"], ["resume"], ["request"]) and not any(a == "--fps" or a.startswith("--fps=") for a in args):
        args += ["--fps", NAIVE_FPS]
    install()
    from host_client.cli import main as host_main

    return host_main(args)


if __name__ == "__main__":
    sys.exit(main())
