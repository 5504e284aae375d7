"""A recording segment that continues from an earlier segment's keyframe: how its bytes are made.

Each one-second segment must play alone, so it begins with a keyframe; of a
1080p text screen that is 55-105 kB, most of what a segment of a changing screen
costs (typing: about 60 kB a second at the limited quality, 108 kB at full). While
the screen changes a little, the host instead encodes the segment against the
keyframe an earlier segment began with: a fresh encoder is given that segment's
first picture again, which it encodes to the very same bytes (libvpx is
deterministic for the same picture and settings, and the host checks), and then
this segment's frames, as inter frames that refer to it. The segment is that
keyframe, *hidden* (VP8's ``show_frame`` bit cleared, RFC 6386 9.1: decoded as the
reference, never shown), then the new frames: it still plays alone, and shows only
this segment's pictures at this segment's times.

The host uploads only the new frames (the *tail*, a WebM of inter frames) and the
number of the segment whose keyframe it continues from; the broker takes that
keyframe from the segment it holds and makes the same bytes with this module,
and stores them only if they hash to what the host committed to
(``PUT .../recording/{index}/continue``, docs/api.md).
"""

from __future__ import annotations

import io

import av
import av.container

from .segment_repeat import segment_output

SHOW_FRAME = 0x10
"""The ``show_frame`` bit in a VP8 frame's first byte."""
KEYFRAME_HEADER_BYTES = 10
"""A VP8 keyframe's uncompressed header: frame tag, start code, sizes."""
VP8_START_CODE = b"\x9d\x01\x2a"


class ContinuationImpossible(Exception):
    """The source or the tail cannot make a continued segment; the message says why."""


def hidden_keyframe(frame: bytes) -> bytes:
    """``frame``, a VP8 keyframe, with its ``show_frame`` bit cleared: decoded as a reference, never shown.

    Raises :class:`ContinuationImpossible` when ``frame`` is not a VP8 keyframe.
    """
    if len(frame) < KEYFRAME_HEADER_BYTES or frame[0] & 1 or frame[3:6] != VP8_START_CODE:
        raise ContinuationImpossible("the source segment does not begin with a VP8 keyframe")
    return bytes([frame[0] & ~SHOW_FRAME & 0xFF]) + frame[1:]


def first_packet(segment: bytes) -> bytes:
    """The first frame of ``segment`` (a segment's keyframe); raises :class:`ContinuationImpossible`."""
    try:
        with av.open(io.BytesIO(segment), "r") as container:
            if len(container.streams) != 1 or not container.streams.video:
                raise ContinuationImpossible("the source segment does not hold one video stream")
            for packet in container.demux(container.streams.video[0]):
                if packet.dts is not None and packet.size:
                    return bytes(packet)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise ContinuationImpossible(f"the source segment cannot be read ({exc})") from None
    raise ContinuationImpossible("the source segment holds no frame")


def continued_segment(source: bytes, tail: bytes) -> bytes:
    """The segment made of ``source``'s first frame, hidden, then ``tail``'s frames at their own times.

    ``tail`` is a WebM of one VP8 stream: the frames the host encoded after that
    keyframe. The result is muxed bit-exact on the tail's stream, so the host and the
    broker make the same bytes. Raises :class:`ContinuationImpossible` when either
    cannot be read or the source does not begin with a keyframe.
    """
    keyframe = hidden_keyframe(first_packet(source))
    buffer = io.BytesIO()
    output = segment_output(buffer)
    try:
        _mux_continuation(output, keyframe, tail)
    except ContinuationImpossible:
        _discard(output)
        raise
    except (av.FFmpegError, ValueError, IndexError) as exc:
        _discard(output)
        raise ContinuationImpossible(f"the tail cannot be read ({exc})") from None
    output.close()
    return buffer.getvalue()


def _mux_continuation(output: av.container.OutputContainer, keyframe: bytes, tail: bytes) -> None:
    with av.open(io.BytesIO(tail), "r") as container:
        if len(container.streams) != 1 or not container.streams.video:
            raise ContinuationImpossible("the tail does not hold one video stream")
        template = container.streams.video[0]
        if template.codec_context.name != "vp8":
            raise ContinuationImpossible(f"the tail holds {template.codec_context.name}, not VP8")
        if template.time_base is None:
            raise ContinuationImpossible("the tail's stream has no time base")
        stream = output.add_stream_from_template(template)
        # As an encoder's stream says: no field order (the demuxer says "progressive").
        stream.codec_context.field_order = 0
        hidden = av.Packet(keyframe)
        hidden.time_base = template.time_base
        hidden.pts = hidden.dts = 0
        hidden.is_keyframe = True
        hidden.stream = stream
        output.mux(hidden)
        for packet in container.demux(template):
            if packet.dts is None:
                continue  # the demuxer's flush packet
            if packet.pts is None or packet.pts < 0:
                raise ContinuationImpossible("a frame of the tail has no time, or one before the segment's start")
            packet.stream = stream
            output.mux(packet)


def _discard(output: av.container.OutputContainer) -> None:
    try:
        output.close()
    except (av.FFmpegError, ValueError):
        pass  # half a segment: its bytes are not wanted
