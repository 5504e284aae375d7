"""The recorder on a real X server: a still screen's segments are copied, not encoded, and still play;
uploaded to a real broker, they go as small repeats and the trail verifies.

A private Xvfb (the session one is shared with tests that paint on it); the
screen is painted with ``xsetroot``, a separate X client. Segments are read
back from the spool with ffprobe and PyAV, alone and joined as the broker joins them.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from broker.audit.recordings import concatenate
from host_client.capture import Screen
from host_client.recorder import RecordingUploader, SegmentRecorder
from tests.support.api import bearer, end_session, exported_bundle_verifies, paired_session, play_recording
from tests.support.polling import async_wait_until, wait_until
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow

BLUE, ORANGE = (30, 80, 200), (230, 140, 20)


@pytest.fixture(scope="module")
def display() -> Iterator[XvfbServer]:
    with XvfbServer.start(640, 480) as server:
        yield server


@pytest.fixture
def recorder_on(display: XvfbServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., SegmentRecorder]]:
    """Starts a recorder of the display's monitor into ``tmp_path / "spool"`` (stopped after the test)."""
    monkeypatch.setenv("DISPLAY", display.display)
    screen = Screen()
    monitor = screen.monitors()[0]
    screen.close()
    started: list[SegmentRecorder] = []

    def start(visible: Callable[[], bool] = lambda: True) -> SegmentRecorder:
        recorder = SegmentRecorder(tmp_path / "spool", lambda: monitor, visible, fps=2)
        recorder.start()
        started.append(recorder)
        return recorder

    yield start
    for recorder in started:
        recorder.stop()


def paint(display: XvfbServer, rgb: tuple[int, int, int]) -> None:
    subprocess.run(["xsetroot", "-display", display.display, "-solid", "#{:02x}{:02x}{:02x}".format(*rgb)], check=True)


def segments(spool: Path) -> list[tuple[dict, bytes]]:
    """(metadata, WebM) of each whole segment in the spool, in order."""
    return [(json.loads(m.read_text()), m.with_suffix(".webm").read_bytes()) for m in sorted(spool.glob("*.json"))]


def packet_times(data: bytes, tmp_path: Path) -> list[tuple[int, bool]]:
    path = tmp_path / "probe.webm"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_packets", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return [(int(p["pts"]), "K" in p["flags"]) for p in json.loads(out.stdout)["packets"]]


def frames(data: bytes) -> list[tuple[float, np.ndarray]]:
    with av.open(io.BytesIO(data)) as container:
        return [(float(frame.time), frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def shows(picture: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    centre = picture[picture.shape[0] // 2, picture.shape[1] // 2].astype(int)
    return bool(np.abs(centre - rgb).max() <= 4)


def test_a_still_screen_is_recorded_without_encoding_after_the_first_segment(display, recorder_on, tmp_path) -> None:
    paint(display, BLUE)
    recorder = recorder_on()
    wait_until(lambda: recorder.segments_replayed >= 4, "four copied segments", timeout=30)
    recorder.stop()
    assert recorder.error is None
    stored = segments(tmp_path / "spool")
    assert len(stored) == recorder.segments_encoded + recorder.segments_replayed
    assert recorder.segments_encoded <= len(stored) - 4

    reference = frames(stored[0][1])[0][1]
    assert shows(reference, BLUE)
    on_time = 0
    for n, (meta, data) in enumerate(stored):
        assert meta["index"] == n
        if n < len(stored) - 1:  # the last one is cut short by stop()
            assert meta["duration_ms"] >= 1000
        # At 2 fps the encoder stamps frames on its 500 ms ticks (a late grab on a later tick);
        # a copied segment must too, keyframe first.
        times = packet_times(data, tmp_path)
        assert times[0] == (0, True) and not any(key for _, key in times[1:])
        assert all(pts % 500 == 0 for pts, _ in times) and [pts for pts, _ in times] == sorted({pts for pts, _ in times})
        decoded = frames(data)
        assert [t for t, _ in decoded] == [pts / 1000 for pts, _ in times]
        on_time += times == [(0, True), (500, False)]
        for _, picture in decoded:
            assert np.array_equal(picture, reference)  # every segment plays alone and shows the screen
    assert on_time >= 3
    offsets = [meta["offset_ms"] for meta, _ in stored]
    assert all(b - a >= 999 for a, b in itertools.pairwise(offsets))  # whole milliseconds, rounded down

    joined = frames(concatenate((meta["offset_ms"], data) for meta, data in stored))
    assert len(joined) == sum(len(frames(data)) for _, data in stored)
    assert all(np.array_equal(picture, reference) for _, picture in joined)


def test_a_change_on_a_still_screen_is_recorded_and_then_copied_again(display, recorder_on, tmp_path) -> None:
    paint(display, BLUE)
    recorder = recorder_on()
    wait_until(lambda: recorder.segments_replayed >= 2, "copied segments of the still screen", timeout=30)
    encoded_before = recorder.segments_encoded
    paint(display, ORANGE)
    wait_until(lambda: any(shows(p, ORANGE) for _, data in segments(tmp_path / "spool") for _, p in frames(data)),
               "a segment showing the change", timeout=15)
    replayed = recorder.segments_replayed
    wait_until(lambda: recorder.segments_replayed >= replayed + 2, "copied segments of the new picture", timeout=30)
    recorder.stop()
    assert recorder.error is None
    assert recorder.segments_encoded > encoded_before

    stored = segments(tmp_path / "spool")
    shown = [[shows(p, ORANGE) for _, p in frames(data)] for _, data in stored]
    first = next(n for n, flags in enumerate(shown) if any(flags))
    assert all(all(flags) for flags in shown[first + 1:])  # the new picture from the change on
    for _, data in stored:
        assert packet_times(data, tmp_path)[0] == (0, True)  # each segment starts with a keyframe
    joined = frames(concatenate((meta["offset_ms"], data) for meta, data in stored))
    assert shows(joined[0][1], BLUE) and shows(joined[-1][1], ORANGE)


def test_a_screen_not_allowed_to_be_seen_is_recorded_black_and_copied(display, recorder_on, tmp_path) -> None:
    paint(display, ORANGE)
    recorder = recorder_on(visible=lambda: False)
    wait_until(lambda: recorder.segments_replayed >= 2, "copied black segments", timeout=30)
    recorder.stop()
    for _, data in segments(tmp_path / "spool"):
        assert all(shows(picture, (0, 0, 0)) for _, picture in frames(data))


async def test_a_still_screen_uploads_only_small_repeats_and_the_trail_verifies(
    display, recorder_on, start_broker, tmp_path,
) -> None:
    """The recorder and its uploader against a real broker: after the first segment, each still
    second costs the uplink a repeat of a few hundred bytes, and what the broker rebuilt from them
    plays, exports and verifies as the spooled segments would."""
    broker = start_broker()
    admin = bearer(broker.login())
    session_id, host_token = paired_session(broker, admin)
    paint(display, BLUE)
    recorder = recorder_on()
    uploader = RecordingUploader(broker.base_url, host_token, session_id, tmp_path / "spool",
                                 live_congested=lambda: False)
    upload = asyncio.create_task(uploader.run())
    try:
        await async_wait_until(lambda: uploader.repeats_uploaded >= 6, "six repeats stored", timeout=40)
        recorder.stop()
        assert await uploader.drain(20)
    finally:
        upload.cancel()
        await asyncio.gather(upload, return_exceptions=True)
    assert recorder.error is None
    whole = uploader.uploaded - uploader.repeats_uploaded
    assert whole <= recorder.segments_encoded + 1  # the first (encoded) segments, and perhaps the last, cut short
    rows = broker.sql('SELECT "index", size, sha256 FROM recording_segments WHERE session_id = ? ORDER BY 1', session_id)
    assert [index for index, _, _ in rows] == list(range(uploader.uploaded))
    stored_bytes = sum(int(size) for _, size, _ in rows)
    # Whole segments of a 640x480 still screen are kilobytes; a repeat is a few hundred bytes.
    repeats_bytes = uploader.bytes_sent - sum(int(size) for index, size, _ in rows[:whole])
    assert repeats_bytes / uploader.repeats_uploaded < 400, uploader.bytes_sent
    assert uploader.bytes_sent < stored_bytes / 2

    assert end_session(broker, admin, session_id, "done").status_code == 200
    joined = play_recording(broker, admin, session_id)
    assert joined.status_code == 200, joined.text
    played = frames(joined.content)
    assert len(played) >= 2 * (len(rows) - 1)  # two frames a second; the last segment may be cut short
    assert all(shows(picture, BLUE) for _, picture in played)
    exported_bundle_verifies(broker, session_id, tmp_path)
    verdict = broker.http.post("/audit/verify", headers=admin)
    assert verdict.status_code == 200 and verdict.json()["ok"] and verdict.json()["problems"] == [], verdict.text
