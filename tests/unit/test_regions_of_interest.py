"""Regions of interest on PyAV frames (peer.regions_of_interest): real libx264 honours them, decoded back."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from av.sidedata.sidedata import Type as SideDataType

from peer import regions_of_interest
from peer.regions_of_interest import MAX_REGIONS, Region, regions_supported, set_regions
from peer.screen_encoder import CHANGED_OFFSET, UNCHANGED_OFFSET, ScreenH264Encoder
from peer.stream_budget import FrameCap

TIME_BASE = fractions.Fraction(1, 90_000)
WORD = (896, 920, 384, 544)
"""(top, bottom, left, right) of the typed word, macroblock-aligned."""


def text_screen() -> np.ndarray:
    rng = np.random.default_rng(3)
    pixels = np.full((1080, 1920, 3), 240, np.uint8)
    for row in range(12, 1060, 18):
        pixels[row : row + 9] = np.where(rng.random((9, 1920, 1)) < 0.3, 30, 240)
    return pixels


def frame_of(pixels: np.ndarray, n: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = n * 3000, TIME_BASE
    return frame


def luma(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="gray").astype(float)


def psnr(got: np.ndarray, want: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(1e-9, float(np.mean((got - want) ** 2)))))


def test_regions_are_available_with_the_installed_pyav() -> None:
    # Off, typing on a coarse picture at 1 Mbit/s costs a quarter of its packets again: the suite must say so.
    assert regions_supported(), f"PyAV {av.__version__}: regions of interest not found; see peer/regions_of_interest.py"


def test_set_regions_attaches_the_side_data_and_an_empty_list_takes_it_away() -> None:
    # PyAV reads a frame's side data once and keeps what it read: each frame is looked at only at the end.
    regions = [Region(0, 16, 0, 32, fractions.Fraction(-1, 3)), Region(0, 1080, 0, 1920, UNCHANGED_OFFSET)]
    frame = frame_of(text_screen(), 0)
    assert set_regions(frame, [regions[1]]) and set_regions(frame, regions), "the second call replaces the first"
    [roi] = [side for side in frame.side_data if side.type == SideDataType.REGIONS_OF_INTEREST]
    assert len(bytes(roi)) == 2 * 28, "two AVRegionOfInterest records of 28 bytes"
    cleared = frame_of(text_screen(), 0)
    assert set_regions(cleared, regions) and set_regions(cleared, [])
    assert SideDataType.REGIONS_OF_INTEREST not in [side.type for side in cleared.side_data]


def test_a_typed_word_on_a_coarse_picture_comes_sharp_in_a_small_frame_and_the_rest_is_left() -> None:
    before = text_screen()
    typed = before.copy()
    typed[WORD[0] + 4 : WORD[1] - 4, WORD[2] + 8 : WORD[3] - 8] = 0  # a word typed on one line
    results = {}
    for with_regions in (False, True):
        encoder, decoder = ScreenH264Encoder(profile="Main"), av.CodecContext.create("h264", "r")
        # A 1 Mbit/s cap: the keyframe comes coarse, as a first picture or one asked for after a loss does.
        context = encoder._open(frame_of(before, 0), FrameCap(frame_bytes=8_333, burst_bytes=25_000))
        [coarse] = decoder.decode(av.Packet(ScreenH264Encoder._encode_on(context, frame_of(before, 0), keyframe=True)))
        frame = frame_of(typed, 1)
        if with_regions:
            top, bottom, left, right = WORD
            assert set_regions(frame, [Region(top, bottom, left, right, CHANGED_OFFSET),
                                       Region(0, 1080, 0, 1920, UNCHANGED_OFFSET)])
        data = ScreenH264Encoder._encode_on(context, frame, keyframe=False)
        [decoded] = decoder.decode(av.Packet(data))
        word = (slice(WORD[0], WORD[1]), slice(WORD[2], WORD[3]))
        rest = np.ones((1080, 1920), bool)
        rest[max(0, WORD[0] - 16) : WORD[1] + 16, max(0, WORD[2] - 16) : WORD[3] + 16] = False
        results[with_regions] = (
            len(data),
            psnr(luma(decoded)[word], luma(frame_of(typed, 0))[word]),
            psnr(luma(decoded)[rest], luma(coarse)[rest]),
        )
    plain, regions = results[False], results[True]
    assert regions[1] >= 40 > plain[1], f"the word at {regions[1]:.1f} dB with regions, {plain[1]:.1f} dB without"
    assert regions[2] >= 45, f"the rest of the picture moved ({regions[2]:.1f} dB from the coarse one): x264 touched it"
    assert regions[0] < 4_000, f"{regions[0]} B for one word"


def test_regions_are_validated() -> None:
    with pytest.raises(ValueError, match="positive size"):
        Region(10, 10, 0, 16, fractions.Fraction(0))
    with pytest.raises(ValueError, match="positive size"):
        Region(-1, 10, 0, 16, fractions.Fraction(0))
    with pytest.raises(ValueError, match="between -1 and 1"):
        Region(0, 16, 0, 16, fractions.Fraction(3, 2))
    frame = frame_of(text_screen(), 0)
    with pytest.raises(ValueError, match="at most"):
        set_regions(frame, [Region(0, 16, 0, 16, fractions.Fraction(0))] * (MAX_REGIONS + 1))


def test_a_region_past_the_frame_is_clipped_to_it() -> None:
    frame = av.VideoFrame(64, 48, "yuv420p")
    assert set_regions(frame, [Region(32, 4_000, 16, 4_000, fractions.Fraction(-1, 3))])
    roi = next(side for side in frame.side_data if side.type == SideDataType.REGIONS_OF_INTEREST)
    _size, top, bottom, left, right, num, den = np.frombuffer(bytes(roi), dtype=np.int32)
    assert (top, bottom, left, right, num, den) == (32, 48, 16, 64, -1, 3)


def test_where_the_frame_pointer_cannot_be_proved_frames_are_coded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another PyAV layout: no word of the object points at an AVFrame whose first plane is the frame's.
    monkeypatch.setattr(regions_of_interest, "POINTER_SEARCH", range(0, 16, 8))
    monkeypatch.setattr(regions_of_interest, "_looked", False)
    monkeypatch.setattr(regions_of_interest, "_libavutil", None)
    assert not regions_supported()
    assert not set_regions(frame_of(text_screen(), 0), [Region(0, 16, 0, 16, fractions.Fraction(0))])
