"""A changing screen's segment continued from an earlier segment's keyframe (protocol.segment_continuation,
host_client.recorder.SegmentWriter): it plays alone, shows only its own pictures at its own times,
and the broker makes the same bytes from the source segment and the tail.

Synthetic BGRA pictures, real libvpx, real WebM muxing, decoded back with PyAV.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from broker.audit.recordings import concatenate
from broker.audit.segment_check import check_segment, read_segment
from host_client.recorder import REFRESH_SHARE, EncodedSegment, SegmentWriter, continuing_costs_more
from host_client.recording_quality import LIMITED_BITRATE
from protocol.segment_continuation import (
    SHOW_FRAME,
    ContinuationImpossible,
    continued_segment,
    first_packet,
    hidden_keyframe,
)
from tests.support.segments import continued_segments, one_frame_file, typing_pictures, webm_segment


def shown(data: bytes) -> list[tuple[float, np.ndarray]]:
    """(time in s, BGR picture) of every frame a player shows."""
    with av.open(io.BytesIO(data)) as container:
        return [(float(frame.time or 0.0), frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]


def nearest(decoded: np.ndarray, pictures: list[np.ndarray]) -> int:
    """Which of the BGRA ``pictures`` a decoded picture shows: the one it differs least from on the line
    being typed (where they differ), once it is within lossy coding of it as a whole."""
    def error(bgra: np.ndarray, rows: slice = slice(None)) -> float:
        return float(np.abs(decoded[rows].astype(int) - bgra[rows, :, :3].astype(int)).mean())

    typed = slice(decoded.shape[0] - 52, decoded.shape[0] - 39)
    best = min(range(len(pictures)), key=lambda index: error(pictures[index], typed))
    assert error(pictures[best]) < 12, "the decoded picture is one of them"
    return best


def test_a_continued_segment_plays_alone_and_shows_only_its_own_pictures() -> None:
    pictures = typing_pictures(4)
    source, writer = continued_segments(pictures)
    assert writer.continued is not None and writer.continued.index == 0
    assert writer.encoded and not writer.encoded_from_start and writer.tail is not None
    data = continued_segment(source, writer.tail)

    check_segment(data, 1000)
    facts = read_segment(data)
    keyframe = facts.packets[0].data
    assert keyframe == hidden_keyframe(first_packet(source)) and not keyframe[0] & SHOW_FRAME
    assert [p.at_ms for p in facts.packets if p.data] == [0, 0, 500], "the hidden keyframe, then the frames at their times"

    played = shown(data)
    assert [at for at, _ in played] == [0.0, 0.5], "the earlier picture is never shown"
    assert [nearest(picture, pictures) for _, picture in played] == [2, 3]


def test_a_continuation_costs_a_fraction_of_a_segment_with_its_own_keyframe() -> None:
    pictures = typing_pictures(4)
    _, writer = continued_segments(pictures)
    fresh = SegmentWriter(2.0, pictures[2], None)
    for at_ms, pixels in zip((1, 502), pictures[2:4], strict=True):
        fresh.add(pixels, at_ms)
    whole = fresh.finish()
    assert writer.tail is not None and len(writer.tail) < len(whole) / 2, (len(writer.tail), len(whole))


def test_the_recordings_segments_join_and_play_in_order() -> None:
    pictures = typing_pictures(4)
    source, writer = continued_segments(pictures)
    assert writer.tail is not None
    joined = concatenate([(0, source), (1000, continued_segment(source, writer.tail))])
    played = shown(joined)
    assert [at for at, _ in played] == [0.0, 0.5, 1.0, 1.5]
    assert [nearest(picture, pictures) for _, picture in played] == [0, 1, 2, 3]


def test_a_reference_the_encoder_does_not_remake_is_not_continued_from() -> None:
    pictures = typing_pictures(3)
    source = SegmentWriter(2.0, pictures[0], None)
    source.add(pictures[0], 0)
    encoded = source.finish()
    # Another encoder's bytes (here: one byte changed) cannot be referred to: the segment gets a keyframe.
    tampered = bytearray(source.keyframe)
    tampered[-1] ^= 0xFF
    for reference in (EncodedSegment(pictures[0], encoded, 0, keyframe=bytes(tampered)),
                      EncodedSegment(pictures[0], encoded, 0, LIMITED_BITRATE, source.keyframe),
                      EncodedSegment(pictures[0], encoded, 0, keyframe=b""),
                      EncodedSegment(np.zeros((120, 160, 4), np.uint8), encoded, 0, keyframe=source.keyframe)):
        writer = SegmentWriter(2.0, pictures[1], None, reference=reference)
        writer.add(pictures[1], 0)
        data = writer.finish()
        assert writer.continued is None and writer.encoded_from_start and writer.tail is None
        check_segment(data, 1000)
        assert read_segment(data).packets[0].data == writer.keyframe and writer.keyframe[0] & SHOW_FRAME
        assert nearest(shown(data)[0][1], pictures) == 1


def test_a_still_or_moved_away_screen_gets_a_keyframe_of_its_own_next() -> None:
    pictures = typing_pictures(4)
    _, typing = continued_segments(pictures)
    assert typing.tail is not None and not continuing_costs_more(typing)

    _, still = continued_segments([*pictures[:2], pictures[3], pictures[3]])
    assert still.one_picture and continuing_costs_more(still), "a still screen: a keyframe, then repeats"

    # The screen moves away within the segment (a scroll starts): its frames cost more than half a keyframe.
    _, scrolling = continued_segments([*pictures[:3], np.roll(pictures[3], 120, axis=0)])
    assert scrolling.continued is not None and scrolling.tail is not None
    assert len(scrolling.tail) > REFRESH_SHARE * len(scrolling.continued.keyframe)
    assert continuing_costs_more(scrolling)

    fresh = SegmentWriter(2.0, pictures[0], None)
    fresh.add(pictures[0], 0)
    fresh.finish()
    assert not continuing_costs_more(fresh), "only a continued segment asks for a fresh keyframe"


def test_a_segment_whose_first_frame_moved_away_from_the_reference_gets_its_own_keyframe() -> None:
    """It takes a keyframe of its own, and the next segment continues from that unless the screen kept moving."""
    pictures = typing_pictures(4)
    _, typing = continued_segments(pictures)
    assert typing.continued is not None
    moved = [np.roll(picture, 120, axis=0) for picture in pictures[2:]]
    writer = SegmentWriter(2.0, moved[0], None, reference=typing.continued)
    for at_ms, pixels in zip((1, 502), moved, strict=True):
        writer.add(pixels, at_ms)
    data = writer.finish()
    assert writer.continued is None and writer.encoded_from_start and writer.tail is None and writer.left_reference
    check_segment(data, 1000)
    assert read_segment(data).packets[0].data == writer.keyframe and writer.keyframe[0] & SHOW_FRAME
    assert [at for at, _ in shown(data)] == [0.0, 0.5]
    assert writer.own_frames_bytes < REFRESH_SHARE * len(writer.keyframe)
    assert not continuing_costs_more(writer), "typing after it: the next segment continues from its keyframe"

    # Still moving after its own keyframe (a scroll): its frames cost about as much, the next segment does not try.
    scrolled = [moved[0], np.roll(moved[1], 360, axis=0)]
    writer = SegmentWriter(2.0, scrolled[0], None, reference=typing.continued)
    for at_ms, pixels in zip((1, 502), scrolled, strict=True):
        writer.add(pixels, at_ms)
    writer.finish()
    assert writer.left_reference and writer.own_frames_bytes > REFRESH_SHARE * len(writer.keyframe)
    assert continuing_costs_more(writer), "a moving screen: the next segment does not try"


def test_what_cannot_make_a_continued_segment_is_refused_with_the_reason() -> None:
    pictures = typing_pictures(4)
    source, writer = continued_segments(pictures)
    assert writer.tail is not None
    with pytest.raises(ContinuationImpossible, match="does not begin with a VP8 keyframe"):
        continued_segment(writer.tail, writer.tail)  # its first frame is an inter frame
    with pytest.raises(ContinuationImpossible, match="cannot be read"):
        continued_segment(b"\x1a\x45\xdf\xa3 not a segment", writer.tail)
    with pytest.raises(ContinuationImpossible, match="tail cannot be read"):
        continued_segment(source, b"garbage" * 100)
    with pytest.raises(ContinuationImpossible, match="not VP8"):
        continued_segment(source, one_frame_file("webm", "libvpx-vp9"))
    with pytest.raises(ContinuationImpossible):
        hidden_keyframe(b"\x01\x02")
    # Another segment's tail is just frames: the bytes come out, and the hash the host committed to decides.
    assert continued_segment(webm_segment(40), writer.tail) != continued_segment(source, writer.tail)
