"""host_client.recorder.SegmentWriter: a still screen's segment copies packets instead of encoding,
and the broker rebuilds such a segment from its repetition (protocol.segment_repeat) to the same bytes.

Synthetic BGRA pictures, real libvpx, real WebM muxing; segments read back with
ffprobe and PyAV. A copied segment must be what an encoded one would be: the
same header, the same frame count and timestamps, the same pictures.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from broker.audit.recordings import concatenate
from broker.audit.segment_check import check_segment
from host_client.recorder import EncodedSegment, SegmentWriter
from protocol.segment_repeat import RepeatImpossible, Repetition, repeat_segment

WIDTH, HEIGHT = 320, 240


def picture(blue: int, green: int, red: int) -> np.ndarray:
    """A BGRA picture with some structure (a lighter block), so frames are not trivially flat."""
    pixels = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    pixels[..., :3] = (blue, green, red)
    pixels[60:120, 80:200, :3] = (min(blue + 90, 255), min(green + 90, 255), min(red + 90, 255))
    return pixels


def write(frames: list[tuple[np.ndarray, int]], replayable: EncodedSegment | None, fps: float = 2.0) -> tuple[bytes, SegmentWriter]:
    writer = SegmentWriter(fps, frames[0][0], replayable)
    for pixels, pts_ms in frames:
        writer.add(pixels, pts_ms)
    return writer.finish(), writer


def probe(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "segment.webm"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-show_packets", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def packets(data: bytes, tmp_path: Path) -> list[tuple[int, bool]]:
    """(pts in ms, keyframe) of each packet, as ffprobe reads them."""
    return [(int(p["pts"]), "K" in p["flags"]) for p in probe(data, tmp_path)["packets"]]


def decoded(data: bytes) -> list[tuple[float, np.ndarray]]:
    with av.open(io.BytesIO(data)) as container:
        return [(float(frame.time), frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def test_a_still_segment_copies_the_packets_with_its_own_timestamps(tmp_path: Path) -> None:
    still = picture(160, 90, 40)
    source, writer = write([(still, 0), (still, 503)], None)
    assert writer.encoded and writer.encoded_from_start and writer.one_picture
    replayable = EncodedSegment(still, source, 0)

    # A later grab of the same picture: a new buffer with the same pixels, other capture times.
    again = still.copy()
    copy, writer = write([(again, 2), (again, 761)], replayable)
    assert not writer.encoded

    # The encoder rounds a frame's time to its 1/fps time base: 761 ms is tick 2 (1000 ms) for it too.
    reference, _ = write([(still, 2), (still, 761)], None)
    assert packets(copy, tmp_path) == packets(reference, tmp_path) == [(0, True), (1000, False)]
    copied, encoded = probe(copy, tmp_path), probe(reference, tmp_path)
    for info in (copied, encoded):
        info["format"].pop("filename")
        for packet in info["packets"]:
            packet.pop("pos")
    assert copied["streams"] == encoded["streams"] and copied["format"] == encoded["format"]
    assert len(copy) == len(reference)

    source_frames, copy_frames = decoded(source), decoded(copy)
    assert [t for t, _ in copy_frames] == [0.0, 1.0]
    for (_, a), (_, b) in zip(source_frames, copy_frames, strict=False):
        assert np.array_equal(a, b)  # the same packets decode to the very same pictures


def test_a_change_in_a_still_segment_is_encoded_from_a_keyframe(tmp_path: Path) -> None:
    still, changed = picture(160, 90, 40), picture(20, 200, 220)
    source, _ = write([(still, 0), (still, 500)], None)
    data, writer = write([(still, 0), (changed, 500)], EncodedSegment(still, source, 0))
    assert writer.encoded and not writer.encoded_from_start and not writer.one_picture
    assert packets(data, tmp_path) == [(0, True), (500, True)]
    (_, first), (_, second) = decoded(data)
    # VP8 is lossy, and the recorder's quantizer no finer than its quality level (recording_quality): compare
    # with the source colours (BGRA -> RGB) within a few levels.
    assert np.abs(first[10, 10].astype(int) - [40, 90, 160]).max() <= 8
    assert np.abs(second[10, 10].astype(int) - [220, 200, 20]).max() <= 8
    assert np.abs(second[90, 140].astype(int) - [255, 255, 110]).max() <= 8


def test_more_frames_than_the_copied_segment_has_are_encoded(tmp_path: Path) -> None:
    still = picture(30, 30, 30)
    source, _ = write([(still, 0)], None)
    data, writer = write([(still, 0), (still, 500)], EncodedSegment(still, source, 0))
    assert writer.encoded
    assert packets(data, tmp_path) == [(0, True), (500, True)]


def test_another_size_or_picture_is_encoded(tmp_path: Path) -> None:
    still = picture(30, 30, 30)
    source, _ = write([(still, 0), (still, 500)], None)
    bigger = np.zeros((HEIGHT + 2, WIDTH, 4), dtype=np.uint8)
    _, writer = write([(bigger, 0), (bigger, 500)], EncodedSegment(still, source, 0))
    assert writer.encoded_from_start
    _, writer = write([(picture(31, 30, 30), 0)], EncodedSegment(still, source, 0))
    assert writer.encoded_from_start


def test_copied_segments_join_with_encoded_ones(tmp_path: Path) -> None:
    still, changed = picture(160, 90, 40), picture(20, 200, 220)
    first, _ = write([(still, 0), (still, 500)], None)
    replayable = EncodedSegment(still, first, 0)
    second, _ = write([(still, 0), (still, 500)], replayable)
    third, _ = write([(still, 0), (changed, 500)], replayable)
    joined = concatenate([(0, first), (1000, second), (2000, third)])
    frames = decoded(joined)
    assert [t for t, _ in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert np.array_equal(frames[2][1], frames[0][1])
    assert np.abs(frames[5][1][10, 10].astype(int) - [220, 200, 20]).max() <= 8


def test_a_copied_segment_is_what_the_broker_rebuilds_from_its_repetition() -> None:
    still = picture(160, 90, 40)
    source, _ = write([(still, 0), (still, 500)], None)
    copy, writer = write([(still.copy(), 3), (still.copy(), 761)], EncodedSegment(still, source, 7))
    repetition = writer.repetition()
    assert repetition == Repetition(source=7, fps=2.0, frames_ms=(3, 761))
    # The broker's side: the same module, from the stored source's bytes; and again, the same bytes.
    assert repeat_segment(source, repetition.fps, repetition.frames_ms) == copy
    assert repeat_segment(source, 2.0, (3, 761)) == copy
    check_segment(copy, 1000)


def test_an_encoded_or_changed_segment_has_no_repetition() -> None:
    still, changed = picture(160, 90, 40), picture(20, 200, 220)
    source, writer = write([(still, 0), (still, 500)], None)
    assert writer.repetition() is None
    _, writer = write([(still, 0), (changed, 500)], EncodedSegment(still, source, 0))
    assert writer.repetition() is None


def test_a_repetition_the_source_cannot_make_is_refused() -> None:
    still = picture(30, 30, 30)
    source, _ = write([(still, 0), (still, 500)], None)
    with pytest.raises(RepeatImpossible, match="only 2 frames"):
        repeat_segment(source, 2.0, (0, 500, 900))
    with pytest.raises(RepeatImpossible, match="cannot be read"):
        repeat_segment(b"\x1a\x45\xdf\xa3 not a segment", 2.0, (0,))
    with pytest.raises(RepeatImpossible, match="at least one frame"):
        repeat_segment(source, 2.0, ())
    with pytest.raises(RepeatImpossible, match="frame rate"):
        repeat_segment(source, 1e-9, (0,))
