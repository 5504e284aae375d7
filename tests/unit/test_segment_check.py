"""What the broker accepts as a recording segment, and the session quotas: the pure judgements, and the reading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from broker.audit.segment_check import (
    MAX_SIDE,
    SegmentFacts,
    SegmentInvalid,
    SegmentPacket,
    check_segment,
    judge_segment,
    read_segment,
    vp8_frame,
)
from broker.sessions.session_usage import SessionQuotas, SessionUsage
from host_client.recorder import SegmentWriter
from tests.support.segments import one_frame_file

WIDTH, HEIGHT = 320, 240


def recorded() -> bytes:
    """A segment exactly as the host's recorder writes it: two frames, the second different."""
    first = np.full((HEIGHT, WIDTH, 4), 200, np.uint8)
    second = first.copy()
    second[10:60, 10:60] = 30
    writer = SegmentWriter(2.0, first, None)
    writer.add(first, 0)
    writer.add(second, 500)
    return writer.finish()


@pytest.fixture(scope="module")
def facts() -> SegmentFacts:
    return read_segment(recorded())


def test_what_the_recorder_writes_is_accepted(facts: SegmentFacts) -> None:
    assert facts.webm and facts.streams == ("video/vp8",) and (facts.width, facts.height) == (WIDTH, HEIGHT)
    assert [p.at_ms for p in facts.packets if p.data] == [0, 500]
    assert judge_segment(facts, 1000) is None
    check_segment(recorded(), 1000)


def test_vp8_headers_say_keyframe_and_size(facts: SegmentFacts) -> None:
    key, inter = (vp8_frame(p.data) for p in facts.packets if p.data)
    assert (key.keyframe, key.width, key.height) == (True, WIDTH, HEIGHT)
    assert not inter.keyframe
    with pytest.raises(SegmentInvalid, match="shorter than"):
        vp8_frame(b"\x00")
    with pytest.raises(SegmentInvalid, match="start code"):
        vp8_frame(key_header(WIDTH, HEIGHT).replace(b"\x9d\x01\x2a", b"\x00\x00\x00"))
    with pytest.raises(SegmentInvalid, match="version"):
        vp8_frame(bytes([0x0E, 0, 0]) + b"\x00" * 20)
    with pytest.raises(SegmentInvalid, match="runs past its end"):
        vp8_frame(bytes([0x01, 0xFF, 0xFF]) + b"\x00" * 20)


def key_header(width: int, height: int, body: int = 20) -> bytes:
    """A keyframe's ten header bytes (first partition of ``body`` bytes) and that body."""
    tag = body << 5 | 1 << 4  # keyframe, version 0, shown
    return bytes([tag & 0xFF, tag >> 8 & 0xFF, tag >> 16]) + b"\x9d\x01\x2a" + \
        width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x00" * body


def with_packets(facts: SegmentFacts, *packets: tuple[int | None, bytes]) -> SegmentFacts:
    return replace(facts, packets=tuple(SegmentPacket(at, data) for at, data in packets))


@pytest.mark.parametrize(("change", "problem"), [
    (lambda f: replace(f, webm=False), "not a WebM"),
    (lambda f: replace(f, streams=("video/vp9",)), "one VP8 video stream, not video/vp9"),
    (lambda f: replace(f, streams=("video/vp8", "audio/opus")), "one VP8 video stream"),
    (lambda f: replace(f, streams=()), "not none"),
    (lambda f: replace(f, width=MAX_SIDE + 2), f"each side must be 1 to {MAX_SIDE}"),
    (lambda f: replace(f, packets=()), "no frames"),
    (lambda f: with_packets(f, *[(n * 10, key_header(WIDTH, HEIGHT)) for n in range(61)]), "61 frames"),
    (lambda f: with_packets(f, (0, key_header(WIDTH, HEIGHT)), (None, b"\x01\x00\x00")), "frame 1 has no time"),
    (lambda f: with_packets(f, (500, key_header(WIDTH, HEIGHT)), (100, key_header(WIDTH, HEIGHT))), "before the frame"),
    (lambda f: with_packets(f, (2001, key_header(WIDTH, HEIGHT))), "past the declared 1000 ms"),
    (lambda f: with_packets(f, (0, b"\x01\x00\x00\x00")), "does not begin with a keyframe"),
    (lambda f: with_packets(f, (0, key_header(WIDTH, HEIGHT)), (500, key_header(640, 480))), "keyframe 1 is 640x480"),
    (lambda f: with_packets(f, (0, b"\x00\x00\x00garbage-garbage")), "frame 0: a keyframe lacks the VP8 start code"),
])
def test_what_a_host_does_not_record_is_refused_with_the_reason(
    facts: SegmentFacts, change: Callable[[SegmentFacts], SegmentFacts], problem: str
) -> None:
    verdict = judge_segment(change(facts), 1000)
    assert verdict is not None and problem in verdict, verdict


def test_a_container_that_cannot_be_read_is_refused() -> None:
    for data in (b"", b"garbage" * 100, recorded()[:200]):
        with pytest.raises(SegmentInvalid):
            check_segment(data, 1000)


def test_a_matroska_file_of_vp8_is_not_a_webm() -> None:
    with pytest.raises(SegmentInvalid, match="not a WebM"):
        check_segment(one_frame_file("matroska", "libvpx"), 1000)


def test_session_quotas_name_the_first_one_overrun() -> None:
    quotas = SessionQuotas(recording_bytes=100, recording_segments=2, peer_events=10, peer_event_bytes=1000)
    assert quotas.overrun(SessionUsage(100, 2, 10, 1000)) is None  # at the quota is within it
    assert "at most 100 bytes of recording" in (quotas.overrun(SessionUsage(recording_bytes=101)) or "")
    assert "at most 2 recording segments" in (quotas.overrun(SessionUsage(recording_segments=3)) or "")
    assert "at most 10 reported events" in (quotas.overrun(SessionUsage(peer_events=11)) or "")
    assert "1000 bytes of reported events" in (quotas.overrun(SessionUsage(peer_event_bytes=1001)) or "")
