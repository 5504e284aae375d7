"""An H.264 encoder for desktop screens, in aiortc's encoder interface.

aiortc's own H.264 encoder is built for camera video: x264's default preset
(about 22 ms a 1080p frame here, 41 ms at p95), a bitrate clamped to 0.5-3
Mbit/s, and a new encoder -- hence a keyframe -- whenever the bitrate estimate
moves by more than 10 %. :class:`ScreenH264Encoder` differs where a desktop
needs it:

* x264 ``superfast`` with ``zerolatency`` (no lookahead, no B-frames, sliced
  threads): 5-6 ms a 1080p frame on two threads, no frame of delay;
* constant quality (CRF :data:`CRF`, quantiser never above :data:`QP_MAX`):
  text stays sharp whatever moves, and a static screen costs almost nothing.
  The stream fits the link by frame rate and scale instead
  (:class:`~peer.stream_budget.StreamBudget`), so a new bitrate estimate never
  rebuilds the encoder or costs a keyframe;
* a keyframe only when the receiver asks (PLI/FIR) or the picture size changes,
  never more often than :data:`MIN_KEYFRAME_GAP` (one lost packet can make a
  receiver ask several times);
* each frame may carry a :class:`~peer.stream_budget.StreamBudget` in
  ``frame.opaque``; the encoder tells it the link bitrate and every frame's size,
  which is how the capture side learns to lower frame rate or scale.

RTP packetization (FU-A/STAP-A) is aiortc's, inherited unchanged.
"""

from __future__ import annotations

import fractions
import os
import time
from collections.abc import Iterator

import av
from aiortc import RTCRtpCodecCapability, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE

from .stream_budget import StreamBudget

CRF = 20
"""x264 constant-rate factor: 9-pixel text stays crisp at 1080p (PSNR ~47 dB on scrolling code)."""
QP_MIN = 12
"""Finest quantiser: beyond it a refinement frame spends bits on differences nobody sees."""
QP_MAX = 34
"""Coarsest quantiser a busy frame may get."""
MIN_KEYFRAME_GAP = 0.3
"""Seconds between two forced keyframes at most once."""
GOP = 100_000
"""No periodic keyframes: receivers ask when they need one."""


def encoder_threads() -> int:
    """Slices encoded in parallel: all cores up to four (more slices cost bits, not time)."""
    return max(1, min(4, os.cpu_count() or 1))


class ScreenH264Encoder(H264Encoder):
    """libx264 tuned for screen content, with live bitrate changes."""

    def __init__(self) -> None:
        super().__init__()
        self._context: av.VideoCodecContext | None = None
        self._estimate: int | None = None
        self._estimate_is_new = False
        self._last_keyframe = float("-inf")
        self.keyframes = 0
        """Keyframes produced so far (for tests and statistics)."""

    @property
    def target_bitrate(self) -> int:
        """The receiver's latest estimate in bit/s (0 before the first); aiortc sets it on each REMB."""
        return self._estimate or 0

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._estimate = max(1, int(bitrate))
        self._estimate_is_new = True  # passed on with the next frame: the budget counts reports

    def _open(self, frame: av.VideoFrame) -> av.VideoCodecContext:
        context = av.CodecContext.create("libx264", "w")
        context.width, context.height = frame.width, frame.height
        context.pix_fmt = "yuv420p"
        context.framerate = fractions.Fraction(30, 1)
        context.time_base = VIDEO_TIME_BASE  # the frames' own: x264 paces its rate control by their timestamps
        context.gop_size = GOP
        context.profile = "Baseline"  # constrained baseline: what every WebRTC H.264 decoder takes
        context.thread_count = encoder_threads()
        context.options = {
            "preset": "superfast",
            "tune": "zerolatency",
            "crf": str(CRF),
            "forced-idr": "1",
            # SPS/PPS with every keyframe: late joiners decode at once. The colour tags say what
            # libswscale produced (BT.601, limited range); untagged, browsers assume BT.709
            # and shift every colour.
            "x264-params": "repeat-headers=1:colormatrix=smpte170m:colorprim=smpte170m:transfer=smpte170m:range=tv",
        }
        context.qmin, context.qmax = QP_MIN, QP_MAX
        return context

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        if self._context is not None and (frame.width, frame.height) != (self._context.width, self._context.height):
            self._context = None
        now = time.monotonic()
        if self._context is None:
            self._context = self._open(frame)
            force_keyframe = True
        keyframe = force_keyframe and now - self._last_keyframe >= MIN_KEYFRAME_GAP
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        data = b"".join(bytes(packet) for packet in self._context.encode(frame))
        if keyframe:
            self._last_keyframe = now
            self.keyframes += 1
        budget = frame.opaque
        if isinstance(budget, StreamBudget):
            if self._estimate is not None and self._estimate_is_new:
                budget.link_bitrate(self._estimate, now)
                self._estimate_is_new = False
            budget.sent(len(data), keyframe=keyframe, now=now)
        if data:
            yield from self._split_bitstream(data)


def screen_codec_preferences() -> list[RTCRtpCodecCapability]:
    """Video codecs in the order a screen stream wants them: constrained-baseline H.264
    (packetization mode 1) first, then the rest as aiortc lists them (VP8 for receivers
    without H.264), each with its retransmission (RTX) entry."""
    codecs = RTCRtpSender.getCapabilities("video").codecs

    def rank(codec: RTCRtpCodecCapability) -> int:
        if codec.mimeType.lower() == "video/h264" and codec.parameters.get("profile-level-id") == "42e01f":
            return 0
        return 2 if codec.mimeType.lower() == "video/rtx" else 1

    return sorted(codecs, key=rank)
