"""host_client.recorder.RecordingUploader against a scripted broker: repeats, their fallback, yielding to the live stream.

The spool is written as the recorder writes it (``<index>.webm`` + ``<index>.json``);
the broker is a stand-in that records each request and answers what the test says.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from host_client.recorder import RecordingUploader, spool_file
from host_client.upload_yield import (
    CATCH_UP,
    DEADLINE_SHARE,
    MIN_PACE,
    PACE_CHUNK_BYTES,
    POLL_SECONDS,
    RESERVE_SHARE,
    STILL_SECONDS,
    UploadYield,
)
from peer.broker_client import BrokerReply

WHOLE = b"\x1a\x45\xdf\xa3" + b"w" * 100_000
"""A whole segment's bytes, as far as the uploader cares."""


class ScriptedBroker:
    """Answers each request with the next status for its kind (``repeat``, ``continue`` or ``whole``), else 204."""

    def __init__(self, repeat: list[int] | None = None, whole: list[int] | None = None, *,
                 live: list[bool] | None = None, continuation: list[int] | None = None) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._answers = {"repeat": list(repeat or []), "whole": list(whole or []), "continue": list(continuation or [])}
        self.live = live

    async def send(self, method: str, path: str, **options: Any) -> BrokerReply:
        kind = path.rsplit("/", 1)[1] if path.endswith(("/repeat", "/continue")) else "whole"
        self.headers.append(options.get("headers") or {})
        sent = json.loads(options["body"].model_dump_json()) if kind == "repeat" else options["data"]
        if not isinstance(sent, (bytes, dict)):  # a paced body: its pieces, read as the HTTP client would
            sent = [piece async for piece in sent]
        self.requests.append((f"{method} {path.rsplit('/recording/', 1)[1]}", sent))
        status = self._answers[kind].pop(0) if self._answers[kind] else 204
        body = json.dumps({"error": "some_code", "message": f"answered {status}"}).encode() if status >= 400 else b""
        return BrokerReply(status, {}, body)

    async def aclose(self) -> None:
        return None


TAIL = b"\x1a\x45\xdf\xa3" + b"t" * 20_000
"""A continued segment's own frames, as far as the uploader cares."""


def spool_segment(spool: Path, index: int, *, repeats: int | None = None, created: float | None = None,
                  continues: int | None = None) -> None:
    spool.mkdir(exist_ok=True)
    stem = spool / f"{index:08d}"
    stem.with_suffix(".webm").write_bytes(WHOLE)
    if continues is not None:
        stem.with_suffix(".tail").write_bytes(TAIL)
    meta = {"index": index, "offset_ms": index * 1000, "duration_ms": 1000, "origin_ms": 1_780_000_000_000,
            "sha256": hashlib.sha256(WHOLE).hexdigest(), "created": created or time.time(),
            "repeats": {"source": repeats, "fps": 2.0, "frames_ms": [1, 502]} if repeats is not None else None,
            "continues": continues}
    stem.with_suffix(".json").write_text(json.dumps(meta))


def uploader(spool: Path, broker: ScriptedBroker, **options: Any) -> RecordingUploader:
    return RecordingUploader("http://127.0.0.1:9", "token", "s" * 8, spool, broker=broker, **options)  # type: ignore[arg-type]


async def test_a_still_segment_goes_as_a_repeat_and_others_whole(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1, repeats=0)
    spool_segment(tmp_path, 2, repeats=0)
    broker = ScriptedBroker()
    up = uploader(tmp_path, broker)
    assert await up.drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 0", "PUT 1/repeat", "PUT 2/repeat"]
    _, repeat = broker.requests[1]
    assert repeat == {"source": 0, "sha256": hashlib.sha256(WHOLE).hexdigest(), "offset_ms": 1000, "duration_ms": 1000,
                      "origin_ms": 1_780_000_000_000, "fps": 2.0, "frames_ms": [1, 502]}
    assert up.uploaded == 3 and up.repeats_uploaded == 2
    assert len(WHOLE) < up.bytes_sent < len(WHOLE) + 1000
    assert up.pending() == []


async def test_a_refused_repeat_goes_whole_and_a_broker_away_keeps_it(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1, repeats=0)
    spool_segment(tmp_path, 2, repeats=0)
    # 422 (another FFmpeg made other bytes) and 404 (a broker without repeats): whole uploads follow.
    broker = ScriptedBroker(repeat=[422, 404])
    up = uploader(tmp_path, broker)
    assert await up.drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 0", "PUT 1/repeat", "PUT 1", "PUT 2/repeat", "PUT 2"]
    assert up.repeats_uploaded == 0 and up.uploaded == 3

    spool_segment(tmp_path, 3, repeats=0)
    broker = ScriptedBroker(repeat=[503])
    up = uploader(tmp_path, broker)
    assert not await up._upload_all(broker)  # type: ignore[arg-type]
    assert [what for what, _ in broker.requests] == ["PUT 3/repeat"]
    assert [p.name for p in up.pending()] == ["00000003.json"], "kept for the next try"


async def test_without_repeats_or_with_a_broken_repetition_every_segment_goes_whole(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1, repeats=0)
    spool_segment(tmp_path, 2, continues=0)
    broker = ScriptedBroker()
    assert await uploader(tmp_path, broker, by_reference=False).drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 0", "PUT 1", "PUT 2"]

    spool_segment(tmp_path, 3, repeats=0)
    marker = tmp_path / "00000003.json"
    meta = json.loads(marker.read_text())
    meta["repeats"]["frames_ms"] = "garbled"
    marker.write_text(json.dumps(meta))
    broker = ScriptedBroker()
    assert await uploader(tmp_path, broker).drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 3"]


async def test_a_continued_segment_goes_by_its_own_frames_and_whole_when_refused(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1, continues=0)
    spool_segment(tmp_path, 2, continues=0)
    up = uploader(tmp_path, broker := ScriptedBroker())
    assert up.waiting_bytes() == len(WHOLE) + 2 * len(TAIL), "what the uploads will take"
    assert await up.drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 0", "PUT 1/continue", "PUT 2/continue"]
    assert broker.requests[1][1] == TAIL
    assert broker.headers[1] == {"X-Segment-SHA256": hashlib.sha256(WHOLE).hexdigest(), "X-Segment-Offset-Ms": "1000",
                                 "X-Segment-Duration-Ms": "1000", "X-Recording-Origin-Ms": "1780000000000",
                                 "X-Segment-Source": "0"}
    assert up.continuations_uploaded == 2 and up.uploaded == 3 and up.bytes_sent == len(WHOLE) + 2 * len(TAIL)
    assert list(tmp_path.iterdir()) == [], "the tails go with their segments"

    # 409 (its source was refused) and 404 (a broker without continuations): whole uploads follow.
    for index in (3, 4):
        spool_segment(tmp_path, index, continues=2)
    up = uploader(tmp_path, broker := ScriptedBroker(continuation=[409, 404]))
    assert await up.drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 3/continue", "PUT 3", "PUT 4/continue", "PUT 4"]
    assert up.continuations_uploaded == 0 and up.uploaded == 2

    spool_segment(tmp_path, 5, continues=4)
    up = uploader(tmp_path, broker := ScriptedBroker(continuation=[503]))
    assert not await up._upload_all(broker)  # type: ignore[arg-type]
    assert [what for what, _ in broker.requests] == ["PUT 5/continue"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000005.json", "00000005.tail", "00000005.webm"]

    (tmp_path / "00000005.tail").unlink()  # a tail lost from the spool: the segment goes whole
    up = uploader(tmp_path, broker := ScriptedBroker())
    assert await up.drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 5"]


async def test_whole_segments_wait_while_the_live_stream_is_congested(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1, repeats=0)
    broker = ScriptedBroker()
    asked: list[int] = []

    def congested() -> bool:
        asked.append(len(broker.requests))
        return len(asked) <= 3  # congested for the first three looks, then clear

    up = uploader(tmp_path, broker, live_congested=congested, max_lag_seconds=lambda: 60.0)
    up.yielding = UploadYield(calm_seconds=0.01)
    assert await up._upload_all(broker)  # type: ignore[arg-type]
    # The whole segment went only once the stream was clear; the repeat after it did not ask.
    assert asked == [0, 0, 0, 0]
    assert [what for what, _ in broker.requests] == ["PUT 0", "PUT 1/repeat"]
    assert up.yielding.waited_seconds > 0


async def test_whole_segments_wait_while_the_live_stream_starts(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    broker = ScriptedBroker()
    looks: list[int] = []

    def starting() -> bool:
        looks.append(len(broker.requests))
        return len(looks) <= 2  # its first picture is due for two looks

    up = uploader(tmp_path, broker, live_congested=lambda: False, live_starting=starting, max_lag_seconds=lambda: 60.0)
    assert await up._upload_all(broker)  # type: ignore[arg-type]
    assert looks == [0, 0, 0] and [what for what, _ in broker.requests] == ["PUT 0"]
    assert up.yielding.waited_seconds == pytest.approx(2 * POLL_SECONDS)


async def test_a_lagging_recording_stops_yielding_and_draining_never_yields(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0, created=time.time() - 10)  # 9 s behind: beyond half the 5 s bound
    broker = ScriptedBroker()
    up = uploader(tmp_path, broker, live_congested=lambda: True, max_lag_seconds=lambda: 5.0)
    assert await up._upload_all(broker)  # type: ignore[arg-type]
    assert up.yielding.waited_seconds == 0 and [what for what, _ in broker.requests] == ["PUT 0"]

    spool_segment(tmp_path, 1)
    up = uploader(tmp_path, broker, live_congested=lambda: True, max_lag_seconds=lambda: 5.0)
    assert await up.drain(5)
    assert up.yielding.waited_seconds == 0 and up.pending() == []


async def test_while_the_link_limits_the_live_stream_a_whole_segment_is_written_at_its_share(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1)
    broker = ScriptedBroker()
    pacing: list[float] = []  # what the live stream was told the upload takes, as each piece is asked for

    def live_limit() -> float | None:
        pacing.append(up.pacing)
        return None if broker.requests else 32_000_000.0

    # Limited at 32 Mbit/s until the first upload is through (1 MB/s at a quarter: 0.1 s for 100 kB).
    up = uploader(tmp_path, broker, live_limit=live_limit, max_lag_seconds=lambda: 60.0)
    started = time.monotonic()
    assert await up._upload_all(broker)  # type: ignore[arg-type]
    (_, paced), (_, unpaced) = broker.requests
    # While the first was written the live stream heard its pace (1 MB/s), none once it was through.
    assert pacing[0] == 0.0 and 1_000_000.0 in pacing and up.pacing == 0.0
    # The first went in pieces, a piece's time at the pace after each; the link was free again for the
    # second, whose pieces went back to back.
    assert isinstance(paced, list) and b"".join(paced) == WHOLE
    assert {len(piece) for piece in paced[:-1]} == {PACE_CHUNK_BYTES}
    assert abs(up.paced_seconds - len(WHOLE) / 1_000_000) < 0.01
    assert time.monotonic() - started >= up.paced_seconds
    assert isinstance(unpaced, list) and b"".join(unpaced) == WHOLE


async def test_a_stored_uploads_rate_is_what_it_took_from_request_to_answer(tmp_path: Path) -> None:
    # Paced at a quarter of 32 Mbit/s (1 MB/s): stored at about 8 Mbit/s, however fast the pieces were handed over.
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1, repeats=0)
    spool_segment(tmp_path, 2)
    broker = ScriptedBroker(whole=[204, 400])
    up = uploader(tmp_path, broker, live_limit=lambda: 32_000_000.0, max_lag_seconds=lambda: 60.0)
    assert up.stored is None
    before = time.monotonic()
    assert await up._upload_all(broker)  # type: ignore[arg-type]
    assert [what for what, _ in broker.requests] == ["PUT 0", "PUT 1/repeat", "PUT 2"]
    # The repeat (a few hundred bytes: its round trips, not the link) and the refused third leave the first's.
    assert up.stored is not None
    stored_at, rate = up.stored
    assert before < stored_at < time.monotonic() - up.paced_seconds / 2  # before the third's 0.1 s of pacing
    assert 4_000_000 < rate <= 8_000_000 * 1.01  # no faster than its pace; this machine's delays slow it a little


def test_the_pace_the_live_stream_is_told_is_the_one_the_next_piece_goes_at(tmp_path: Path) -> None:
    sharpening = False
    up = uploader(tmp_path, ScriptedBroker(), live_limit=lambda: 4_000_000.0, max_lag_seconds=lambda: 60.0,
                  live_sharpening=lambda: sharpening)
    assert up.current_pace() == 0.0, "no upload under way"
    up.pacing = 125_000.0  # the last piece went at a quarter of 4 Mbit/s
    assert up.current_pace() == 125_000.0
    # The settled picture starts to sharpen and the deadlines allow the uploads to wait: the floor, from now on.
    sharpening, up.yielding.may_defer = True, True
    assert up.current_pace() == MIN_PACE and up.pacing == MIN_PACE


async def test_the_drain_after_the_session_is_not_paced_for_the_ending_live_stream(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    spool_segment(tmp_path, 1)
    broker = ScriptedBroker()
    # A live target of 100 kbit/s would pace each 100 kB segment for seconds.
    up = uploader(tmp_path, broker, live_limit=lambda: 100_000.0, max_lag_seconds=lambda: 5.0)
    started = time.monotonic()
    assert await up.drain(5)
    assert [what for what, _ in broker.requests] == ["PUT 0", "PUT 1"]
    assert up.paced_seconds == 0 and time.monotonic() - started < 1.0


async def test_a_lagging_recording_is_not_paced(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0, created=time.time() - 10)  # beyond half the 5 s bound
    broker = ScriptedBroker()
    up = uploader(tmp_path, broker, live_limit=lambda: 1_000_000.0, max_lag_seconds=lambda: 5.0)
    assert await up._upload_all(broker)  # type: ignore[arg-type]
    [(what, pieces)] = broker.requests
    assert what == "PUT 0" and b"".join(pieces) == WHOLE and up.paced_seconds == 0


def test_a_recording_far_behind_asks_the_live_stream_for_part_of_the_link(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    up = uploader(spool, ScriptedBroker(), max_lag_seconds=lambda: 5.0)
    assert up.live_reserve(up.lag_seconds()) == 0.0  # nothing waits
    # Two segments waiting, the oldest made 1.3 s ago: 0.3 s behind, under RESERVE_SHARE (10 %) of the 5 s bound.
    assert abs(RESERVE_SHARE * 5.0 - 0.5) < 1e-9
    spool_segment(spool, 0, created=time.time() - 1.3)
    spool_segment(spool, 1)
    assert up.waiting_bytes() == 2 * len(WHOLE)
    assert up.live_reserve(up.lag_seconds()) == 0.0
    # The oldest made 2.6 s ago: 1.6 s behind. The newest, less than RECENT_SECONDS behind, says the recording
    # piles up at a segment a recorded second; it gets CATCH_UP times that (more than its deadlines ask)...
    spool_segment(spool, 0, created=time.time() - 2.6)
    assert up.live_reserve(up.lag_seconds()) == pytest.approx(CATCH_UP * len(WHOLE) * 8, rel=0.02)
    # ...while the screen keeps changing. Still for STILL_SECONDS, it piles up at nothing: the deadlines count.
    deadline = DEADLINE_SHARE * 5.0
    in_time = max(len(WHOLE) / (deadline - 1.6), 2 * len(WHOLE) / deadline)
    assert up.live_reserve(up.lag_seconds(), still_seconds=STILL_SECONDS) == pytest.approx(8 * in_time, rel=0.02)
    # A still screen since: the newest is a repeat, a few hundred bytes. The oldest must be stored before it is
    # DEADLINE_SHARE of the bound behind, 2.9 s from now; both together before the newest is, 4.5 s from now.
    spool_segment(spool, 1, repeats=0)
    assert up.live_reserve(up.lag_seconds(), still_seconds=STILL_SECONDS) == pytest.approx(
        8 * len(WHOLE) / (deadline - 1.6), rel=0.02)
    assert up.yielding.reserving
    # A link that does not limit the live stream: nothing set aside, and uploads go as they would without.
    assert up.live_reserve(up.lag_seconds(), limited=False) == 0.0
    assert not up.yielding.reserving and up.yielding.reserved_rate == 0.0


def test_while_the_settled_picture_sharpens_nothing_is_set_aside_as_long_as_the_deadlines_allow(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    up = uploader(spool, ScriptedBroker(), max_lag_seconds=lambda: 5.0)
    spool_segment(spool, 0, created=time.time() - 2.6)  # 1.6 s behind: a part is due
    spool_segment(spool, 1)
    lag = up.lag_seconds()
    assert up.live_reserve(lag, still_seconds=STILL_SECONDS) > 0  # as before without the link's capacity
    # At 1 Mbit/s the two 100 kB segments are stored in time even if uploads start a second from now.
    assert up.live_reserve(lag, still_seconds=STILL_SECONDS, capacity=1_000_000.0, sharpening=True) == 0.0
    assert up.yielding.may_defer and up.yielding.reserved_rate == 0.0
    # Not sharpening: the part the deadlines ask, as before (may_defer is only what the deadlines allow).
    assert up.live_reserve(lag, still_seconds=STILL_SECONDS, capacity=1_000_000.0) > 0
    # At 400 kbit/s they would not be: the part the deadlines ask, sharpening or not.
    assert up.live_reserve(lag, still_seconds=STILL_SECONDS, capacity=400_000.0, sharpening=True) > 0
    assert not up.yielding.may_defer


async def test_a_whole_segment_waits_for_a_sharpening_picture_and_goes_once_it_is_sharp(tmp_path: Path) -> None:
    spool_segment(tmp_path, 0)
    broker = ScriptedBroker()
    sharpening = [True]

    def live_sharpening() -> bool:
        return sharpening[0]

    up = uploader(tmp_path, broker, live_congested=lambda: False, live_sharpening=live_sharpening,
                  max_lag_seconds=lambda: 5.0)
    up.yielding.defer_due(up.waiting_segments(), max_lag_seconds=5.0, capacity=1_000_000.0)
    uploading = asyncio.ensure_future(up._upload_all(broker))  # type: ignore[arg-type]
    await asyncio.sleep(0.6)
    assert broker.requests == [] and up.yielding.waited_seconds >= 0.5
    sharpening[0] = False
    assert await asyncio.wait_for(uploading, 2)
    assert [what for what, _ in broker.requests] == ["PUT 0"]


@pytest.mark.parametrize("ticks", range(4))
async def test_the_uploader_stops_when_cancelled_just_as_a_segment_is_handed_to_it(tmp_path: Path, ticks: int) -> None:
    # The session cancels it once the session is over, while the recorder still hands it segments: a
    # cancellation lost then (asyncio.wait_for on Python 3.11) left a host running long after its session ended.
    up = uploader(tmp_path / "spool", ScriptedBroker())
    running = asyncio.ensure_future(up.run())
    await asyncio.sleep(0.01)  # waiting for the next segment
    up.segment_ready(0)
    for _ in range(ticks):
        await asyncio.sleep(0)
    running.cancel()
    await asyncio.wait({running}, timeout=5)
    assert running.cancelled()


def test_a_spooled_file_is_never_seen_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the uploader lists (``*.json``) while a marker is being written: nothing under its name until it is whole."""
    seen: list[tuple[str, bytes]] = []
    write_bytes = Path.write_bytes

    def halting_write(self: Path, data: bytes) -> int:  # type: ignore[override]
        write_bytes(self, data[: len(data) // 2])
        seen.extend((marker.name, marker.read_bytes()) for marker in tmp_path.glob("*.json"))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", halting_write)
    spool_file(tmp_path / "00000001.json", b'{"index": 1, "sha256": "ab"}')
    assert seen == [], "the uploader would have read a half-written marker"
    assert json.loads((tmp_path / "00000001.json").read_text()) == {"index": 1, "sha256": "ab"}
