"""The screen encoder (peer.screen_encoder): real libx264, frames in, RTP payloads out, decoded back."""

from __future__ import annotations

import fractions
import time
from dataclasses import dataclass, field

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Decoder, h264_depayload
from aiortc.jitterbuffer import JitterFrame

from peer import screen_encoder
from peer.screen_encoder import ScreenH264Encoder, screen_codec_preferences
from peer.stream_budget import StreamBudget

TIME_BASE = fractions.Fraction(1, 90_000)


def text_screen(width: int = 1920, height: int = 1080, shift: int = 0) -> np.ndarray:
    """Dark 'glyphs' on a light background, shifted down by ``shift`` rows (a scroll)."""
    rng = np.random.default_rng(7)
    pixels = np.full((height + 400, width, 3), 245, np.uint8)
    for row in range(10, height + 380, 18):
        for left in rng.integers(0, width - 8, 60):
            pixels[row : row + 11, left : left + 6] = 30
    return np.ascontiguousarray(pixels[shift : shift + height])


def frame_of(pixels: np.ndarray, pts: int, budget: StreamBudget | None = None) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = pts, TIME_BASE
    frame.opaque = budget
    return frame


def decode(decoder: H264Decoder, payloads: list[bytes], timestamp: int) -> list[av.VideoFrame]:
    data = b"".join(h264_depayload(p) for p in payloads)
    frames = []
    for frame in decoder.decode(JitterFrame(data=data, timestamp=timestamp)):
        assert isinstance(frame, av.VideoFrame)  # an H.264 decoder makes video frames only
        frames.append(frame)
    return frames


def is_keyframe(payloads: list[bytes]) -> bool:
    """An IDR slice (NAL type 5) anywhere in the frame, also inside STAP-A/FU-A packets."""
    for payload in payloads:
        kind = payload[0] & 0x1F
        if kind == 5 or (kind == 28 and payload[1] & 0x1F == 5):
            return True
        if kind == 24:  # STAP-A: 2-byte sizes before each NAL unit
            at = 1
            while at + 2 < len(payload):
                size = int.from_bytes(payload[at : at + 2], "big")
                if payload[at + 2] & 0x1F == 5:
                    return True
                at += 2 + size
    return False


def test_frames_round_trip_sharp_through_aiortcs_decoder() -> None:
    encoder, decoder = ScreenH264Encoder(), H264Decoder()
    source = text_screen()
    payloads, timestamp = encoder.encode(frame_of(source, 0))
    assert is_keyframe(payloads), "the first frame is a keyframe"
    assert all(len(p) <= 1300 for p in payloads), "payloads fit aiortc's RTP packet size"
    [decoded] = decode(decoder, payloads, timestamp)
    assert (decoded.width, decoded.height) == (1920, 1080)
    got = decoded.to_ndarray(format="gray").astype(float)
    want = frame_of(source, 0).to_ndarray(format="gray").astype(float)
    psnr = 10 * np.log10(255**2 / np.mean((got - want) ** 2))
    assert psnr > 35, f"text must stay sharp, got {psnr:.1f} dB"


def test_scrolling_frames_are_small_and_never_keyframes() -> None:
    encoder = ScreenH264Encoder()
    encoder.encode(frame_of(text_screen(), 0))
    for n in range(1, 10):
        payloads, _ = encoder.encode(frame_of(text_screen(shift=6 * n), n * 3000))
        assert not is_keyframe(payloads)
        assert sum(map(len, payloads)) < 150_000
    assert encoder.keyframes == 1


def test_a_keyframe_when_asked_but_not_twice_within_the_minimum_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = ScreenH264Encoder()
    source = text_screen()
    encoder.encode(frame_of(source, 0))
    monkeypatch.setattr(screen_encoder, "MIN_KEYFRAME_GAP", 60.0)
    payloads, _ = encoder.encode(frame_of(source, 3000), force_keyframe=True)
    assert not is_keyframe(payloads), "a second request inside the gap is one lost packet asking twice"
    monkeypatch.setattr(screen_encoder, "MIN_KEYFRAME_GAP", 0.0)
    payloads, _ = encoder.encode(frame_of(source, 6000), force_keyframe=True)
    assert is_keyframe(payloads) and encoder.keyframes == 2


def test_a_new_estimate_never_costs_a_keyframe() -> None:
    encoder = ScreenH264Encoder()
    encoder.encode(frame_of(text_screen(), 0))
    for n, estimate in enumerate([300_000, 50_000_000, 2_000_000, 2_100_000], start=1):
        encoder.target_bitrate = estimate
        payloads, _ = encoder.encode(frame_of(text_screen(shift=n), n * 3000))
        assert not is_keyframe(payloads)
    assert encoder.target_bitrate == 2_100_000 and encoder.keyframes == 1


def test_a_new_picture_size_starts_with_a_keyframe() -> None:
    encoder, decoder = ScreenH264Encoder(), H264Decoder()
    encoder.encode(frame_of(text_screen(), 0))
    payloads, timestamp = encoder.encode(frame_of(text_screen(1440, 810), 3000))
    assert is_keyframe(payloads)
    [decoded] = decode(decoder, payloads, timestamp)
    assert (decoded.width, decoded.height) == (1440, 810)


@dataclass
class ListeningBudget(StreamBudget):
    """A budget that notes the link bitrates it hears instead of acting on them."""

    reports: list[float] = field(default_factory=list)

    def link_bitrate(self, bits_per_second: float, now: float) -> None:
        self.reports.append(bits_per_second)


def test_the_budget_riding_on_a_frame_hears_sizes_and_the_estimate() -> None:
    encoder, budget = ScreenH264Encoder(), ListeningBudget(max_fps=30)
    reports = budget.reports
    encoder.target_bitrate = 100_000
    for n in range(5):
        encoder.encode(frame_of(text_screen(shift=8 * n), n * 3000, budget), force_keyframe=False)
        if n == 2:
            encoder.target_bitrate = 100_000  # a second report, same figure
    assert reports == [100_000, 100_000], "each report once, with the next frame"
    assert budget.send_rate(time.monotonic()) > 100_000


def test_screen_codec_preferences_put_constrained_baseline_h264_first_and_keep_vp8() -> None:
    codecs = screen_codec_preferences()
    assert codecs[0].mimeType == "video/H264" and codecs[0].parameters["profile-level-id"] == "42e01f"
    names = [c.mimeType for c in codecs]
    assert "video/VP8" in names and names[-1] == "video/rtx"
