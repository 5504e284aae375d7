"""How much of the screen a change repainted (host_client.capture.changed_share), on made-up grabs."""

from __future__ import annotations

import numpy as np

from host_client.capture import CHANGE_SAMPLE_ROWS, changed_share


def grab(height: int = 1080, width: int = 1920) -> np.ndarray:
    """A page of text: rows of dark glyphs, 11 pixels high every 18 rows, on a light background."""
    rng = np.random.default_rng(3)
    pixels = np.full((height, width, 4), 245, np.uint8)
    for top in range(4, height - 11, 18):
        for left in rng.integers(0, width - 6, 80):
            pixels[top : top + 11, left : left + 6] = 30
    return pixels


def test_a_scroll_repaints_nearly_every_row_and_a_typed_line_a_few() -> None:
    before = grab()
    assert changed_share(before, before.copy()) == 0.0
    scrolled = np.roll(before, 9, axis=0)  # half a line: every line of text moves
    assert changed_share(before, scrolled) > 0.5
    typed = before.copy()
    typed[500:509, 100:106] = 0  # one 9-pixel glyph
    share = changed_share(before, typed)
    assert 0 < share <= 2 / (1080 / CHANGE_SAMPLE_ROWS), "a line of text meets a sampled row"


def test_a_grab_of_another_size_counts_as_all_new() -> None:
    assert changed_share(grab(), grab(1200, 1920)) == 1.0
