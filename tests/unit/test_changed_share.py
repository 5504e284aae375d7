"""Where a change repainted the screen (host_client.capture.changed_rows, row_bands and changed_boxes), on made-up
grabs."""

from __future__ import annotations

import numpy as np
import pytest

from host_client.capture import BOX_GAP, changed_boxes, changed_rows, row_bands


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
    assert changed_rows(before, before.copy()).size == 0
    scrolled = np.roll(before, 9, axis=0)  # half a line: every line of text moves
    assert changed_rows(before, scrolled).size > 0.5 * 1080
    typed = before.copy()
    typed[500:509, 100:106] = 0  # one 9-pixel glyph
    assert changed_rows(before, typed).tolist() == list(range(500, 509))


def test_grabs_of_two_sizes_have_no_rows_in_common() -> None:
    with pytest.raises(ValueError, match="one size"):
        changed_rows(grab(), grab(1200, 1920))


def test_rows_make_bands_closer_than_the_gap_and_merge_the_closest_past_the_limit() -> None:
    rows = np.array([3, 4, 5, 30, 31, 100, 200])
    assert row_bands(np.array([], np.intp)) == []
    assert row_bands(rows, gap=BOX_GAP) == [(3, 6), (30, 32), (100, 101), (200, 201)]
    assert row_bands(rows, gap=30) == [(3, 32), (100, 101), (200, 201)]
    assert row_bands(rows, gap=BOX_GAP, limit=2) == [(3, 101), (200, 201)]


def test_changed_boxes_cover_every_changed_pixel_one_box_a_band_of_rows() -> None:
    before = grab()
    assert changed_boxes(before, before.copy()) == ()
    typed = before.copy()
    typed[500:509, 100:106] = 0  # a glyph typed on one line...
    typed[500:509, 900:906] = 0  # ...the rest of the line moved along...
    typed[20:60, 1800:1900] = 7  # ...and a clock in a corner
    assert changed_boxes(before, typed) == ((20, 60, 1800, 1900), (500, 509, 100, 906))
    # Rows closer than BOX_GAP are one band; a change one row high counts.
    typed[508 + BOX_GAP, 300] = 1
    assert changed_boxes(before, typed)[-1] == (500, 509 + BOX_GAP, 100, 906)
    typed[525 + BOX_GAP, 300] = 1  # one row more than BOX_GAP below: a band of its own
    assert changed_boxes(before, typed)[-1] == (525 + BOX_GAP, 526 + BOX_GAP, 300, 301)


def test_changed_boxes_follow_the_frames_scale_rounded_outwards_and_merge_the_closest_past_the_limit() -> None:
    before = grab()
    typed = before.copy()
    typed[501:509, 101:107] = 0
    typed[1000:1001, 1000:1001] = 0
    assert changed_boxes(before, typed, scale=0.75) == ((375, 382, 75, 81), (750, 751, 750, 751))
    typed[900:901, 10:11] = 0
    # Three bands, two allowed: the two closest (900 and 1000) become one.
    assert changed_boxes(before, typed, limit=2) == ((501, 509, 101, 107), (900, 1001, 10, 1001))
    with pytest.raises(ValueError):
        changed_boxes(grab(), grab(1200, 1920))


def test_a_change_in_the_odd_row_a_frame_leaves_out_makes_no_box() -> None:
    before = grab(1081, 1921)
    typed = before.copy()
    typed[1080, 1920] = 0  # to_i420 rounds the frame down to even: this pixel is not in it
    assert changed_boxes(before, typed) == ()
