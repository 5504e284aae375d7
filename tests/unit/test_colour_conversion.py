"""BGRA screen pixels to I420 (host_client.colour_conversion): exact BT.601 luma whatever the padding byte holds, and
a change converted in tiles making the very frame a whole conversion makes."""

from __future__ import annotations

import av
import numpy as np
import pytest

from host_client.colour_conversion import TILE, I420Converter


def bt601_luma(bgra: np.ndarray) -> np.ndarray:
    b, g, r = (bgra[..., i].astype(float) for i in range(3))
    return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:, : p.width].copy() for p in frame.planes]


def whole(pixels: np.ndarray) -> list[np.ndarray]:
    """The planes of ``pixels`` converted whole by a converter that saw nothing before."""
    return planes(I420Converter().convert(pixels))


def test_luma_is_exact_even_with_garbage_in_the_padding_byte() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (216, 384, 4), dtype=np.uint8)  # X leaves the 4th byte undefined
    frame = I420Converter().convert(pixels)
    assert frame.format.name == "yuv420p" and (frame.width, frame.height) == (384, 216)
    luma = frame.to_ndarray()[:216]
    assert np.abs(luma - bt601_luma(pixels)).max() <= 1.0


def test_odd_sizes_are_cropped_to_even_and_scaling_keeps_even_sizes() -> None:
    converter = I420Converter()
    pixels = np.zeros((101, 201, 4), np.uint8)
    assert (converter.convert(pixels).width, converter.convert(pixels, changed=()).height) == (200, 100)
    scaled = converter.convert(np.zeros((1080, 1920, 4), np.uint8), 0.75)
    assert (scaled.width, scaled.height) == (1440, 810)


@pytest.mark.parametrize(("height", "width"), [(1080, 1920), (769, 1367), (3 * TILE, 64)])
def test_a_change_converted_in_tiles_is_the_whole_conversion_bit_for_bit(height: int, width: int) -> None:
    rng = np.random.default_rng(11)
    before = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)  # noise: any filter's reach shows
    converter = I420Converter()
    converter.convert(before)
    # Bands at the top and bottom edges, across a tile boundary, one row high, odd rows.
    chosen = [[(0, 3)], [(height - 5, height)], [(TILE - 1, TILE + 1)], [(7, 8), (height // 2 + 1, height // 2 + 4)]]
    tops = rng.integers(0, height - 1, (10, 2))
    for bands in [*chosen, *([(int(t), int(t) + 1 + int(t) % 9) for t in sorted(pair)] for pair in tops)]:
        after = before.copy()
        for top, bottom in bands:
            after[top:bottom] = rng.integers(0, 256, after[top:bottom].shape, dtype=np.uint8)
        converted = planes(converter.convert(after, changed=bands))
        for got, expected in zip(converted, whole(after), strict=True):
            assert np.array_equal(got, expected), f"bands {bands} at {width}x{height}"
        before = after


def test_the_same_picture_is_a_copy_and_frames_handed_out_never_change() -> None:
    rng = np.random.default_rng(5)
    first = rng.integers(0, 256, (240, 320, 4), dtype=np.uint8)
    converter = I420Converter()
    frame = converter.convert(first)
    kept = planes(frame)
    again = converter.convert(first, changed=())
    assert again is not frame and all(np.array_equal(a, b) for a, b in zip(planes(again), kept, strict=True))
    second = first.copy()
    second[100:110] = 0
    converter.convert(second, changed=[(100, 110)])
    converter.convert(rng.integers(0, 256, (240, 320, 4), dtype=np.uint8))  # a whole conversion again
    assert all(np.array_equal(a, b) for a, b in zip(planes(frame), kept, strict=True)), "a frame handed out was written"


def test_changes_against_another_size_or_scale_are_converted_whole() -> None:
    rng = np.random.default_rng(9)
    converter = I420Converter()
    converter.convert(rng.integers(0, 256, (200, 320, 4), dtype=np.uint8))
    taller = rng.integers(0, 256, (240, 320, 4), dtype=np.uint8)
    # The bands name no row of the new picture: only a whole conversion is right.
    assert all(np.array_equal(a, b) for a, b in zip(planes(converter.convert(taller, changed=[])), whole(taller),
                                                    strict=True))
    scaled = converter.convert(taller, 0.5, changed=[])
    assert (scaled.width, scaled.height) == (160, 120)
    back = converter.convert(taller, changed=[])
    assert all(np.array_equal(a, b) for a, b in zip(planes(back), whole(taller), strict=True))
