"""The recorder while the link is the limit: segments of a changing screen are encoded smaller, and are
still segments as the recorder makes them: each plays alone, they join, upload, export and verify.

A private Xvfb with the benchmark's scripted desktop (bench/workload.py) typing into its editor: a
screen of text that changes every second, what a 1080p keyframe costs most for. The live stream's
congestion is a flag the test flips; the recorder reads it at each segment's start.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from statistics import mean

import av
import pytest

from bench.workload import WorkloadProcess
from broker.audit.recordings import concatenate
from broker.audit.segment_check import check_segment
from host_client.capture import Screen
from host_client.recorder import RecordingUploader, SegmentRecorder
from host_client.recording_quality import FULL_BITRATE, LIMITED_BITRATE, RecordingQuality
from tests.support.api import bearer, end_session, exported_bundle_verifies, paired_session, play_recording
from tests.support.polling import wait_until
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def display() -> Iterator[XvfbServer]:
    with XvfbServer.start(1280, 720) as server:
        yield server


def spooled(spool: Path) -> list[tuple[dict, bytes]]:
    """(metadata, WebM) of each whole segment in the spool, in order."""
    return [(json.loads(m.read_text()), m.with_suffix(".webm").read_bytes()) for m in sorted(spool.glob("*.json"))]


def frame_count(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def new_recorder(display: XvfbServer, monkeypatch: pytest.MonkeyPatch, spool: Path,
                 congested: threading.Event) -> SegmentRecorder:
    monkeypatch.setenv("DISPLAY", display.display)
    screen = Screen()
    monitor = screen.monitors()[0]
    screen.close()
    return SegmentRecorder(spool, lambda: monitor, lambda: True, fps=2, link_congested=congested.is_set)


async def test_typing_is_recorded_smaller_while_the_link_is_congested_and_the_trail_verifies(
    display, monkeypatch, start_broker, tmp_path,
) -> None:
    spool = tmp_path / "spool"
    congested = threading.Event()
    with WorkloadProcess(display.env) as workload:
        recorder = new_recorder(display, monkeypatch, spool, congested)
        typing = threading.Thread(target=workload.phase, args=("typing", 16.0))
        typing.start()
        recorder.start()
        try:
            wait_until(lambda: recorder.segments_encoded >= 7, "full-quality segments of typing", timeout=30)
            congested.set()
            wait_until(lambda: recorder.segments_limited >= 6, "limited segments of typing", timeout=30)
        finally:
            recorder.stop()
            typing.join()
    assert recorder.error is None

    stored = spooled(spool)
    # Whole seconds of typing, not the first (settling) nor the last (cut short by stop()).
    typed = [(meta, data) for meta, data in stored[1:-1] if meta["duration_ms"] >= 1000]
    full = [len(data) for meta, data in typed if meta["bitrate"] == FULL_BITRATE]
    limited = [len(data) for meta, data in typed if meta["bitrate"] == LIMITED_BITRATE]
    assert len(full) >= 4 and len(limited) >= 4, [(meta["bitrate"], len(data)) for meta, data in stored]
    assert mean(limited) < 0.8 * mean(full), (full, limited)
    # No segment after the first limited one is full: the limit holds while the link is calm only briefly.
    first_limited = next(n for n, (meta, _) in enumerate(stored) if meta["bitrate"] == LIMITED_BITRATE)
    assert all(meta["bitrate"] in (LIMITED_BITRATE, None) for meta, _ in stored[first_limited:])

    for meta, data in stored:
        check_segment(data, meta["duration_ms"])  # what the broker checks before it stores a segment
        assert frame_count(data) >= 1  # plays alone
    joined = concatenate((meta["offset_ms"], data) for meta, data in stored)
    assert frame_count(joined) == sum(frame_count(data) for _, data in stored)

    broker = start_broker()
    admin = bearer(broker.login())
    session_id, host_token = paired_session(broker, admin)
    uploader = RecordingUploader(broker.base_url, host_token, session_id, spool, live_congested=lambda: False)
    waiting = uploader.waiting_bytes()
    assert await uploader.drain(60)
    assert uploader.uploaded == len(stored)
    # Typing continues from earlier keyframes: those segments go by their own frames, a fraction of their bytes.
    continued = [meta for meta, _ in stored if meta["continues"] is not None]
    assert recorder.segments_continued == len(continued) >= 4, [(m["continues"], m["bitrate"]) for m, _ in stored]
    assert uploader.continuations_uploaded == len(continued)
    whole = sum(len(data) for _, data in stored)
    assert uploader.bytes_sent == waiting < 0.6 * whole, (uploader.bytes_sent, whole)
    print(f"typing recorded: {len(stored)} segments, {len(continued)} continued; {whole} bytes, {waiting} uploaded")
    rows = broker.sql('SELECT "index", sha256 FROM recording_segments WHERE session_id = ? ORDER BY 1', session_id)
    assert [(index, sha) for index, sha in rows] == [(meta["index"], meta["sha256"]) for meta, _ in stored]
    assert end_session(broker, admin, session_id, "done").status_code == 200
    played = play_recording(broker, admin, session_id)
    assert played.status_code == 200, played.text
    assert frame_count(played.content) == frame_count(joined)
    exported_bundle_verifies(broker, session_id, tmp_path)
    verdict = await asyncio.to_thread(broker.http.post, "/audit/verify", headers=admin)
    assert verdict.status_code == 200 and verdict.json()["ok"] and verdict.json()["problems"] == [], verdict.text


def test_a_still_screen_recorded_limited_is_encoded_again_at_full_quality_once_the_link_is_calm(
    display, monkeypatch, tmp_path,
) -> None:
    subprocess.run(["xsetroot", "-display", display.display, "-solid", "#1e50c8"], check=True)
    congested = threading.Event()
    congested.set()
    recorder = new_recorder(display, monkeypatch, tmp_path / "spool", congested)
    recorder.quality = RecordingQuality(calm_seconds=1.0)  # before start(): only the recorder's thread asks it after
    recorder.start()
    try:
        wait_until(lambda: recorder.segments_replayed >= 2, "copies of the limited still screen", timeout=30)
        congested.clear()
        wait_until(lambda: any(meta["bitrate"] == FULL_BITRATE for meta, _ in spooled(tmp_path / "spool")),
                   "the still screen encoded at full quality", timeout=30)
        replayed = recorder.segments_replayed
        wait_until(lambda: recorder.segments_replayed >= replayed + 2, "copies of the full-quality segment", timeout=30)
    finally:
        recorder.stop()
    assert recorder.error is None
    bitrates = [meta["bitrate"] for meta, _ in spooled(tmp_path / "spool")]
    assert bitrates[0] == LIMITED_BITRATE
    # Limited, its copies, once full, then its copies: a still screen is encoded at most once per quality.
    encoded = [b for b in bitrates if b is not None]
    assert encoded == [LIMITED_BITRATE, FULL_BITRATE], bitrates
