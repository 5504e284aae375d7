"""The capture track on a real X server: frames when the screen changes, nothing while it is static.

A private Xvfb (the session one is shared with tests that paint on it); changes
are drawn with ``xsetroot``, a separate X client, as any application would.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Literal, TypedDict, Unpack

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from host_client import capture
from host_client.capture import Screen, ScreenTrack
from host_client.damage import DamageWatcher
from peer.stream_budget import REFINE_SHARE, START_BITRATE, FrameCap
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def display() -> Iterator[XvfbServer]:
    with XvfbServer.start(640, 480) as server:
        yield server


@pytest.fixture
async def screen(display: XvfbServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Screen]:
    monkeypatch.setenv("DISPLAY", display.display)
    paint(display, "#000000")
    shared = Screen()
    yield shared
    shared.close()


def paint(display: XvfbServer, colour: str) -> None:
    subprocess.run(["xsetroot", "-display", display.display, "-solid", colour], check=True)


def centre_rgb(frame: av.VideoFrame) -> tuple[int, int, int]:
    rgb = frame.to_ndarray(format="rgb24")
    r, g, b = rgb[rgb.shape[0] // 2, rgb.shape[1] // 2]
    return int(r), int(g), int(b)


async def frame_within(track: ScreenTrack, seconds: float) -> av.VideoFrame | None:
    try:
        return await asyncio.wait_for(track.recv(), seconds)
    except TimeoutError:
        return None


async def settle(track: ScreenTrack) -> None:
    """Take the first frame and the refinement frames after it, until the track goes quiet."""
    assert await frame_within(track, 5) is not None
    while await frame_within(track, max(capture.REFINE_AFTER) + 0.5) is not None:
        pass


class TrackOptions(TypedDict, total=False):
    """The :class:`ScreenTrack` options a test sets (the track's defaults for the rest)."""

    visible: Callable[[], bool]
    fps: float
    damage: DamageWatcher | Literal["auto"] | None


def make_track(screen: Screen, **options: Unpack[TrackOptions]) -> ScreenTrack:
    monitor = screen.monitors()[0]
    return ScreenTrack(lambda: monitor, screen=screen, **options)


async def test_a_static_screen_costs_no_grab_and_a_change_arrives_at_once(display: XvfbServer, screen: Screen) -> None:
    track = make_track(screen, fps=30)
    try:
        assert track.watches_damage, "Xvfb has DAMAGE: the track must use it"
        await settle(track)
        grabs = track.grabs
        assert await frame_within(track, 1.5) is None
        assert track.grabs == grabs, "nothing was drawn: the screen must not even be grabbed"

        changed_at = time.monotonic()
        paint(display, "#ff0000")
        frame = await frame_within(track, 2)
        assert frame is not None, "a change must produce a frame"
        assert time.monotonic() - changed_at < 0.5
        r, g, b = centre_rgb(frame)
        assert r > 200 and g < 60 and b < 60
        assert frame.opaque.budget is track.budget, "the frame carries the budget to the encoder"
    finally:
        track.stop()


async def test_a_refinement_frame_follows_motion_then_the_track_goes_quiet(display: XvfbServer, screen: Screen) -> None:
    track = make_track(screen)
    try:
        await settle(track)
        paint(display, "#00ff00")
        assert await frame_within(track, 2) is not None
        paint(display, "#0000ff")  # a second change right after the first: motion
        assert await frame_within(track, 2) is not None
        started = time.monotonic()
        refinements = 0
        while await frame_within(track, 0.9) is not None:
            refinements += 1
        assert refinements == len(capture.REFINE_AFTER)
        assert time.monotonic() - started < max(capture.REFINE_AFTER) + 1.5
    finally:
        track.stop()


async def test_an_isolated_change_has_one_tail_then_the_track_goes_quiet(display: XvfbServer, screen: Screen) -> None:
    track = make_track(screen)
    try:
        await settle(track)
        paint(display, "#808080")  # a typed letter, a blinking caret: coded at full quality already
        assert await frame_within(track, 2) is not None
        # Its tail: were the change lost whole, the receiver sees the gap now, not at the keep-alive.
        assert await frame_within(track, max(capture.REFINE_AFTER) + 0.6) is not None
        assert await frame_within(track, 1.0) is None
    finally:
        track.stop()


async def test_drawing_the_same_pixels_again_sends_nothing(display: XvfbServer, screen: Screen) -> None:
    track = make_track(screen)
    try:
        paint(display, "#0000ff")
        await settle(track)
        grabs = track.grabs
        paint(display, "#0000ff")
        assert await frame_within(track, 1.0) is None
        assert track.grabs == grabs + 1, "damage made the track look, the comparison kept the frame back"
    finally:
        track.stop()


async def test_a_keyframe_request_sends_a_frame_of_a_static_screen(screen: Screen) -> None:
    track = make_track(screen)
    try:
        await settle(track)
        asked_at = time.monotonic()
        track.keyframe_requested()
        assert await frame_within(track, 1.0) is not None
        assert time.monotonic() - asked_at < 0.3
        # Its tail: were the keyframe's last packet lost, the receiver sees the gap now, not at the keep-alive.
        assert await frame_within(track, max(capture.REFINE_AFTER) + 0.6) is not None
        assert await frame_within(track, 1.0) is None
    finally:
        track.stop()


async def test_while_the_encoder_says_capped_the_settled_screen_is_sent_again_at_the_frame_rate(
    screen: Screen,
) -> None:
    track = make_track(screen, fps=20)
    try:
        await settle(track)
        paint_at = time.monotonic()
        track.budget.refining = True  # what the budget says once the encoder's frames hit their cap
        track.keyframe_requested()
        arrivals = []
        for _ in range(6):  # the encoder says capped five more times, then sharp
            assert await frame_within(track, 1.0) is not None
            arrivals.append(time.monotonic())
        track.budget.refining = False
        assert arrivals[-1] - paint_at < 6 * 0.05 + 1.0, "at the budget's frame rate, not a slow cadence"
        # On the frame grid: single gaps jitter with the capture thread, their mean does not.
        assert (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1) >= 0.045, "never faster than it"
        assert await frame_within(track, 1.0) is None, "sharp: the track goes quiet"
    finally:
        track.stop()


def draw_box(display: XvfbServer, left: int, top: int, width: int, height: int, pixel: int) -> None:
    """Fill a rectangle of the root window (a typed word, a clock), as an X client draws."""
    from Xlib import display as xdisplay  # python-xlib comes with pynput

    connection = xdisplay.Display(display.display)
    try:
        root = connection.screen().root
        gc = root.create_gc(foreground=pixel)
        root.fill_rectangle(gc, left, top, width, height)
        connection.sync()
    finally:
        connection.close()


async def test_a_small_change_on_a_picture_being_refined_carries_its_box_and_the_refinement_goes_on(
    display: XvfbServer, screen: Screen,
) -> None:
    track = make_track(screen, fps=20)
    try:
        await settle(track)
        draw_box(display, 100, 200, 40, 20, 0xFFFFFF)
        frame = await frame_within(track, 2)
        assert frame is not None and frame.opaque.changed_boxes == (), "a sharp picture: the encoder codes it whole"
        await settle_quietly(track)
        # The encoder's last whole frame, a capped one, went out now: the picture is coarse, and the next
        # refinement frame is due 0.3 s on (its bits at the refinement's share of the target).
        now = time.monotonic()
        cap = track.budget.frame_cap(now)
        track.budget.sent(int(0.3 * REFINE_SHARE * START_BITRATE / 8), keyframe=False, now=now, cap=cap)
        assert track.budget.refining and track.budget.refine_interval() == pytest.approx(0.3)
        frames: list[av.VideoFrame] = []

        async def collect() -> None:
            while True:
                frames.append(await track.recv())

        collector = asyncio.create_task(collect())
        for n in range(10):  # typing, a character every 0.12 s: faster than the refinement's spacing
            draw_box(display, 100 + 8 * n, 200, 8, 20, 0x00FF00 + n)
            await asyncio.sleep(0.12)
        collector.cancel()
        typed = [f for f in frames if not f.opaque.repeat]
        assert typed and all(f.opaque.changed_boxes[0][:2] == (200, 220) and len(f.opaque.changed_boxes) == 1
                             for f in typed), [f.opaque.changed_boxes for f in typed]
        # Partial frames leave the rest of the picture to the refinement, spaced from the last whole frame: typing
        # must not hold it off (the encoder is not here to say another whole frame went out).
        assert any(f.opaque.repeat for f in frames), "refinement frames come between the typed ones"
    finally:
        track.budget.refining = False
        track.stop()


async def settle_quietly(track: ScreenTrack) -> None:
    """Take frames until the track goes quiet (the tail of the last change)."""
    while await frame_within(track, max(capture.REFINE_AFTER) + 0.5) is not None:
        pass


async def test_a_keyframe_long_after_the_last_change_is_refined_too(screen: Screen, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "REFINE_FOR", 0.5)
    track = make_track(screen, fps=20)
    try:
        await settle(track)
        await asyncio.sleep(1.0)  # the screen has been still longer than REFINE_FOR
        track.budget.refining = True
        track.budget.last_keyframe_at = time.monotonic()  # the encoder made a capped keyframe (a new cap)
        for _ in range(3):  # refined as after a change, not left coarse
            assert await frame_within(track, 1.0) is not None
        track.budget.refining = False
        assert await frame_within(track, 1.0) is None
    finally:
        track.stop()


async def test_a_frame_the_encoder_wants_later_comes_then_from_a_static_screen(screen: Screen) -> None:
    track = make_track(screen)
    try:
        await settle(track)
        wanted_at = time.monotonic() + 0.4
        track.budget.frame_wanted_at = wanted_at  # a keyframe it had to defer
        assert await frame_within(track, 2.0) is not None
        assert time.monotonic() >= wanted_at and track.budget.frame_wanted_at is None
        assert await frame_within(track, 1.0) is None
    finally:
        track.stop()


async def test_a_refinement_is_brought_forward_when_the_budget_gives_the_picture_more(screen: Screen) -> None:
    # A capped keyframe with all but the floor set aside for the recording: the next refinement is 4 s away. The
    # share released (a settled picture starts to sharpen), the track works it out again at once.
    track = make_track(screen, fps=20)
    try:
        await settle(track)
        budget, now = track.budget, time.monotonic()
        budget.reserve(5_000_000.0, now)
        budget.sent(60_000, keyframe=True, now=now, cap=FrameCap(frame_bytes=10_000, burst_bytes=80_000))
        assert budget.refining and budget.refine_interval() == pytest.approx(4.0)
        receiving = asyncio.ensure_future(frame_within(track, 3.0))
        await asyncio.sleep(0.3)
        budget.reserve(0.0, time.monotonic())
        assert budget.refine_interval() == pytest.approx(0.6)
        track.reconsider()
        assert await receiving is not None
        assert time.monotonic() - now < 2.0, "at the new interval (0.6 s), not the one worked out before (4 s)"
    finally:
        track.stop()


async def test_without_damage_the_track_polls_and_still_sends_only_changes(display: XvfbServer, screen: Screen) -> None:
    track = make_track(screen, fps=20, damage=None)
    try:
        assert not track.watches_damage
        assert await frame_within(track, 5) is not None  # the first frame is always sent
        grabs = track.grabs
        assert await frame_within(track, 1.0) is None
        assert track.grabs - grabs >= 10, "polling grabs at the frame rate"
        paint(display, "#ffff00")
        frame = await frame_within(track, 1.0)
        assert frame is not None
        r, g, b = centre_rgb(frame)
        assert r > 200 and g > 200 and b < 60
    finally:
        track.stop()


async def test_a_screen_not_allowed_to_be_seen_sends_black_frames(display: XvfbServer, screen: Screen) -> None:
    paint(display, "#ffffff")
    track = make_track(screen, visible=lambda: False)
    try:
        frame = await frame_within(track, 2)
        assert frame is not None
        assert not np.any(frame.to_ndarray(format="rgb24"))
        assert track.grabs == 0
    finally:
        track.stop()


async def test_the_budget_scale_shrinks_the_frames(display: XvfbServer, screen: Screen) -> None:
    track = make_track(screen)
    try:
        track.budget.scale = 0.5
        frame = await frame_within(track, 5)
        assert frame is not None and (frame.width, frame.height) == (320, 240)
    finally:
        track.stop()


@pytest.mark.parametrize("damage", [True, False], ids=["damage", "polling"])
async def test_a_track_stopped_while_it_waits_ends_its_frames_without_an_error(
    display: XvfbServer, screen: Screen, damage: bool
) -> None:
    """What the host does when the technician's viewer leaves: the track stops while aiortc waits in ``recv``.

    The waiting ``recv`` must end as a track ends (``MediaStreamError``), never by handing a
    grab to the stopped capture thread (aiortc would log its ``RuntimeError`` as a traceback).
    """
    options: TrackOptions = {} if damage else {"damage": None}
    track = make_track(screen, **options)
    assert await frame_within(track, 5) is not None
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.1)  # waiting for the screen to change (or for the next poll)
    assert not waiting.done()
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiting, 5)
