"""A recording segment that repeats an earlier segment's picture: how its bytes are made.

On a still screen the host writes each one-second segment by copying the packets
of the last segment encoded from that one picture (keyframe first) with the new
segment's own frame times (``host_client/recorder.py``). Such a segment is fully
determined by the earlier segment's bytes, the frame rate and its frames' times,
so the host uploads only those facts and the segment's SHA-256, and the broker
rebuilds the bytes from the segment it already holds and checks the hash
(``PUT .../recording/{index}/repeat``, docs/api.md). Both sides make the bytes
with this module, so the same inputs give the very same bytes.

The WebM is muxed bit-exact (FFmpeg's ``+bitexact``): no random track UID and no
library version in the header, which would otherwise differ between two runs.
A broker whose FFmpeg muxes differently rebuilds other bytes; the hash check
refuses the repeat and the host uploads the segment whole.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import av.container


@dataclass(frozen=True)
class Repetition:
    """What makes a repeating segment's bytes, beside its source's: the source's number, the frame rate
    and each frame's time from the segment's start."""

    source: int
    fps: float
    frames_ms: tuple[int, ...]


class RepeatImpossible(Exception):
    """The source is not a segment whose packets can stand for the frames asked; the message says why."""


def segment_output(buffer: BinaryIO) -> av.container.OutputContainer:
    """A WebM muxer for one segment into ``buffer``: bit-exact, so the same packets give the same bytes."""
    return av.open(buffer, "w", format="webm", options={"fflags": "+bitexact"})


def frame_rate(fps: float) -> Fraction:
    """The recording's frame rate as the encoder's time base inverse (1/rate seconds a tick)."""
    return Fraction(fps).limit_denominator(1000)


def frame_tick(at_ms: int, rate: Fraction) -> int:
    """The encoder's rounding: a frame ``at_ms`` after the segment's start, in ticks of 1/``rate``, to the nearest."""
    return math.floor(Fraction(at_ms, 1000) * rate + Fraction(1, 2))


class SegmentRepeat:
    """Muxes ``source``'s packets, in order, at new times onto ``output``, on a stream set up as the encoder's.

    :attr:`stream` is that stream: the recorder encodes the rest of a segment onto
    it when the picture changes before the copied packets run out.
    """

    def __init__(self, output: av.container.OutputContainer, source: bytes, rate: Fraction) -> None:
        if rate <= 0:
            raise RepeatImpossible("the frame rate is below one frame in 1000 seconds")
        self._rate = rate
        try:
            with av.open(io.BytesIO(source), "r") as container:
                if len(container.streams) != 1 or not container.streams.video:
                    raise RepeatImpossible("the source segment does not hold one video stream")
                template = container.streams.video[0]
                self.stream = output.add_stream_from_template(template)
                self._packets = [packet for packet in container.demux(template) if packet.dts is not None]
        except (av.FFmpegError, ValueError, IndexError) as exc:
            raise RepeatImpossible(f"the source segment cannot be read ({exc})") from None
        # What the encoder's stream has and a demuxed one lacks or adds: the frame rate (the
        # track's default duration) and no field order (the demuxer says "progressive").
        self.stream.codec_context.framerate = rate
        self.stream.codec_context.field_order = 0
        self._output = output
        self._copied = 0

    @property
    def remaining(self) -> int:
        """Packets of the source not copied yet."""
        return len(self._packets) - self._copied

    def add(self, at_ms: int) -> None:
        """The next source packet as the frame ``at_ms`` after the segment's start."""
        if not self.remaining:
            raise RepeatImpossible(f"the source segment has only {len(self._packets)} frames")
        packet = self._packets[self._copied]
        self._copied += 1
        packet.time_base = 1 / self._rate
        packet.pts = packet.dts = frame_tick(at_ms, self._rate)
        packet.duration = 0
        packet.stream = self.stream
        self._output.mux(packet)


def repeat_segment(source: bytes, fps: float, frames_ms: Sequence[int]) -> bytes:
    """The bytes of a segment whose frames, at ``frames_ms``, repeat ``source``'s packets at ``fps``.

    Raises :class:`RepeatImpossible` when ``source`` cannot be read or has fewer frames.
    """
    if not frames_ms:
        raise RepeatImpossible("a segment has at least one frame")
    buffer = io.BytesIO()
    output = segment_output(buffer)
    try:
        repeat = SegmentRepeat(output, source, frame_rate(fps))
        for at_ms in frames_ms:
            repeat.add(at_ms)
    except RepeatImpossible:
        with contextlib.suppress(av.FFmpegError, ValueError):
            output.close()  # half a segment: its bytes are not wanted
        raise
    output.close()
    return buffer.getvalue()
