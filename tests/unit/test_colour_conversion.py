"""BGRA screen pixels to I420 (host_client.capture.to_i420): exact BT.601 luma, whatever the padding byte holds."""

from __future__ import annotations

import numpy as np

from host_client.capture import to_i420


def bt601_luma(bgra: np.ndarray) -> np.ndarray:
    b, g, r = (bgra[..., i].astype(float) for i in range(3))
    return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255


def test_luma_is_exact_even_with_garbage_in_the_padding_byte() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (216, 384, 4), dtype=np.uint8)  # X leaves the 4th byte undefined
    frame = to_i420(pixels)
    assert frame.format.name == "yuv420p" and (frame.width, frame.height) == (384, 216)
    luma = frame.to_ndarray()[:216]
    assert np.abs(luma - bt601_luma(pixels)).max() <= 1.0


def test_odd_sizes_are_cropped_to_even_and_scaling_keeps_even_sizes() -> None:
    pixels = np.zeros((101, 201, 4), np.uint8)
    assert (to_i420(pixels).width, to_i420(pixels).height) == (200, 100)
    scaled = to_i420(np.zeros((1080, 1920, 4), np.uint8), 0.75)
    assert (scaled.width, scaled.height) == (1440, 810)
