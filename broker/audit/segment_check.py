"""A recording segment is checked to be what a host records before it is stored.

What ``host_client/recorder.py`` makes, and so what playback and export can join
(``broker.audit.recordings.concatenate``): a standalone WebM with one VP8 video
stream, its first frame a keyframe, every frame a VP8 frame whose keyframes
carry the stream's size, its timestamps in order and within the duration the
host declared, at most :data:`MAX_FPS` frames a second. A segment of garbage
bytes with its true SHA-256 would otherwise be stored, and from then on the
session's playback and export fail.

The check demuxes the container and reads each frame's VP8 header (three to
ten bytes); it decodes nothing. ``bench/segment_check.py`` measures it.

Sizes: the host does not tell the broker its monitors, and if it did, it would be
the same party as the one uploading. A session's segments may differ in size (the
technician switches to another monitor; each segment begins with a keyframe that
carries its size, and players follow), so each segment is judged on its own,
against fixed bounds: at most :data:`MAX_SIDE` pixels a side, larger than any
monitor sold (8K is 7680 x 4320).

:func:`read_segment` does the reading (PyAV); :func:`judge_segment` and
:func:`vp8_frame` are pure.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av

from protocol.recording import MAX_RECORDING_FPS

MAX_SIDE = 8192
"""Widest or tallest a recorded frame may be, in pixels."""
MAX_FPS = MAX_RECORDING_FPS
"""Most frames a second a segment may hold: the highest ``DESKHAND_RECORDING_FPS``."""
DURATION_SLACK_MS = 1000
"""How far past its declared duration a segment's last frame may start."""

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
WEBM_DOCTYPE = b"\x42\x82\x84webm"
"""The EBML header's DocType element saying "webm" (id 0x4282, size 4)."""
VP8_START_CODE = b"\x9d\x01\x2a"


class SegmentInvalid(Exception):
    """The bytes are not a segment the broker can store; the message says why."""


@dataclass(frozen=True)
class Vp8Frame:
    """What a VP8 frame's header says (RFC 6386, 9.1)."""

    keyframe: bool
    width: int | None = None
    """Keyframes only, like ``height``."""
    height: int | None = None


@dataclass(frozen=True)
class SegmentPacket:
    """One demuxed packet: its time in ms from the segment's start, and its bytes."""

    at_ms: int | None
    data: bytes


@dataclass(frozen=True)
class SegmentFacts:
    """What demuxing a segment found."""

    webm: bool
    """The EBML header says DocType "webm" (a Matroska file says "matroska")."""
    streams: tuple[str, ...]
    """Each stream's type and codec, e.g. ``("video/vp8",)``."""
    width: int
    height: int
    packets: tuple[SegmentPacket, ...]


def vp8_frame(data: bytes) -> Vp8Frame:
    """Parse a VP8 frame's header; raises :class:`SegmentInvalid` when it is not one."""
    if len(data) < 3:
        raise SegmentInvalid("a frame is shorter than a VP8 frame header")
    tag = data[0] | data[1] << 8 | data[2] << 16
    keyframe = not tag & 1
    version = tag >> 1 & 7
    first_partition = tag >> 5
    header = 10 if keyframe else 3
    if version > 3:
        raise SegmentInvalid(f"a frame has VP8 version {version}; there are 0 to 3")
    if header + first_partition > len(data):
        raise SegmentInvalid("a frame's first partition runs past its end")
    if not keyframe:
        return Vp8Frame(keyframe=False)
    if data[3:6] != VP8_START_CODE:
        raise SegmentInvalid("a keyframe lacks the VP8 start code")
    width = (data[6] | data[7] << 8) & 0x3FFF
    height = (data[8] | data[9] << 8) & 0x3FFF
    return Vp8Frame(keyframe=True, width=width, height=height)


def judge_segment(facts: SegmentFacts, duration_ms: int) -> str | None:
    """Why ``facts`` are not a segment as a host records it (None: they are), given the declared duration."""
    if not facts.webm:
        return "it is not a WebM file"
    if facts.streams != ("video/vp8",):
        return f"it must hold one VP8 video stream, not {', '.join(facts.streams) or 'none'}"
    if not (1 <= facts.width <= MAX_SIDE and 1 <= facts.height <= MAX_SIDE):
        return f"its frames are {facts.width}x{facts.height}; each side must be 1 to {MAX_SIDE} pixels"
    frames = [p for p in facts.packets if p.data]
    if not frames:
        return "it holds no frames"
    most = (duration_ms + DURATION_SLACK_MS) * MAX_FPS // 1000
    if len(frames) > most:
        return f"it holds {len(frames)} frames; {duration_ms} ms hold at most {most}"
    last = -1
    for number, packet in enumerate(frames):
        if packet.at_ms is None or packet.at_ms < last or packet.at_ms < 0:
            return f"frame {number} has no time, or one before the frame ahead of it"
        if packet.at_ms > duration_ms + DURATION_SLACK_MS:
            return f"frame {number} starts at {packet.at_ms} ms, past the declared {duration_ms} ms"
        last = packet.at_ms
        try:
            frame = vp8_frame(packet.data)
        except SegmentInvalid as bad:
            return f"frame {number}: {bad}"
        if number == 0 and not frame.keyframe:
            return "it does not begin with a keyframe, so it cannot play on its own"
        if frame.keyframe and (frame.width, frame.height) != (facts.width, facts.height):
            return f"keyframe {number} is {frame.width}x{frame.height} in a {facts.width}x{facts.height} stream"
    return None


def read_segment(data: bytes) -> SegmentFacts:
    """Demux ``data`` (no decoding); raises :class:`SegmentInvalid` when it cannot be read as a container."""
    head = data[:64]
    webm = head.startswith(EBML_MAGIC) and WEBM_DOCTYPE in head
    try:
        with av.open(io.BytesIO(data), "r") as container:
            streams = tuple(f"{s.type}/{s.codec_context.name}" for s in container.streams)
            if len(container.streams) != 1 or container.streams[0].type != "video":
                return SegmentFacts(webm, streams, 0, 0, ())
            video = container.streams.video[0]
            scale = float(video.time_base or 0) * 1000
            packets = tuple(
                SegmentPacket(round(p.pts * scale) if p.pts is not None else None, bytes(p))
                for p in container.demux(video)
            )
            return SegmentFacts(webm, streams, video.codec_context.width, video.codec_context.height, packets)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise SegmentInvalid(f"it cannot be read as a recording ({exc})") from None


def check_segment(data: bytes, duration_ms: int) -> None:
    """Raise :class:`SegmentInvalid` unless ``data`` is a segment as a host records it."""
    problem = judge_segment(read_segment(data), duration_ms)
    if problem is not None:
        raise SegmentInvalid(problem)
