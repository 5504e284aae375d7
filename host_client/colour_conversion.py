"""Screen grabs (BGRA) to the encoder's I420 frames, converting only the rows that changed.

libswscale converts a 1920x1080 grab in 4.5 ms on this machine's cores (5.5 ms when a new
conversion context is set up for every frame, as ``VideoFrame.reformat`` does), more than
x264 takes for a typed letter; twice that on two cores shared with the encoder, the
receiver and the X server. A typed letter, a blinking caret or a clock changes a band of
rows: :class:`I420Converter` copies the last frame and converts only the :data:`TILE`-row
tiles within :data:`MARGIN` rows of a changed row, each through a window :data:`MARGIN` rows taller
on both sides (libswscale's chroma filter reads a row beyond its pair: converted without the margin,
a tile's edge rows differ from the whole picture's, and a change in a tile's last row changes the
chroma of the next tile's first). The result is the very frame a whole conversion
makes, bit for bit, so the encoder codes what it coded before (tests/unit/test_colour_conversion.py).
A refinement frame (the settled picture sent again) is a copy: 0.2 ms.

Colour: BT.601, limited range (libswscale's default; the encoder tags its stream so).
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

TILE = 32
"""Rows converted together: a changed row costs the conversion of its tile (0.15 ms for a 1920-pixel-wide window)."""
MARGIN = 4
"""Rows converted above and below a tile and thrown away (2 suffice for libswscale's bilinear chroma; even, so
that chroma rows pair up as in the whole picture)."""
WHOLE_SHARE = 0.4
"""A change whose tiles cover more than this share of the rows is converted whole (a tile's window costs more per
row than the whole picture's conversion)."""

Band = tuple[int, int]
"""Rows ``top`` (included) to ``bottom`` (excluded)."""


def even_size(pixels: np.ndarray) -> tuple[int, int]:
    """The (height, width) an I420 frame of ``pixels`` has: each rounded down to even (chroma is a pixel pair's)."""
    return pixels.shape[0] & ~1, pixels.shape[1] & ~1


def _bgra(pixels: np.ndarray) -> av.VideoFrame:
    """``pixels`` as a BGRA frame over the same memory (cropped to even sizes, a copy then)."""
    height, width = even_size(pixels)
    if (height, width) != pixels.shape[:2]:
        pixels = np.ascontiguousarray(pixels[:height, :width])
    return av.VideoFrame.from_numpy_buffer(pixels, format="bgra")


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Y, U and V of an I420 ``frame`` as (rows, columns) arrays over its own memory (the padding left out)."""
    return [np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:, : plane.width] for plane in frame.planes]


class I420Converter:
    """Converts successive grabs of one screen; remembers the last frame to convert the next one's changes only.

    One converter belongs to one thread at a time (it keeps libswscale contexts). The frames it returns are
    new each time and never written again: a consumer may keep them.
    """

    def __init__(self) -> None:
        self._whole = VideoReformatter()
        self._window = VideoReformatter()
        self._last: av.VideoFrame | None = None
        self._last_key: tuple[int, int, float] | None = None

    def convert(self, pixels: np.ndarray, scale: float = 1.0, changed: Sequence[Band] | None = None) -> av.VideoFrame:
        """``pixels`` (a (height, width, 4) BGRA grab) as an I420 frame scaled by ``scale``, sizes rounded down to
        even. ``changed``: the bands of rows in which ``pixels`` differ from the last call's (empty: the same
        picture); None when not known, and the whole picture is converted."""
        height, width = even_size(pixels)
        key = (height, width, scale)
        tiles = None if changed is None else self._tiles(changed, height)
        if (tiles is None or self._last is None or self._last_key != key or scale != 1.0
                or height < TILE + 2 * MARGIN or len(tiles) * TILE > WHOLE_SHARE * height):
            frame = self._convert_whole(pixels, scale)
        else:
            frame = self._convert_tiles(pixels, tiles)
        self._last, self._last_key = frame, key
        return frame

    @staticmethod
    def _tiles(changed: Sequence[Band], height: int) -> list[int]:
        """The first rows of the tiles ``changed`` touches, in order, each once: with :data:`MARGIN` rows either side,
        since a changed row also changes the chroma of the row pairs next to its own."""
        tiles: set[int] = set()
        for top, bottom in changed:
            top, bottom = max(0, top - MARGIN), min(height, bottom + MARGIN)
            if top < bottom:
                tiles.update(range(top // TILE * TILE, bottom, TILE))
        return sorted(tiles)

    def _convert_whole(self, pixels: np.ndarray, scale: float) -> av.VideoFrame:
        source = _bgra(pixels)
        if scale == 1.0:
            # BILINEAR, not FAST_BILINEAR: libswscale's fast path garbles luma next to X's
            # undefined padding byte (34 dB against the exact BT.601 value, 62 dB with BILINEAR).
            return self._whole.reformat(source, format="yuv420p", interpolation="BILINEAR")
        # AREA averages the pixels a target pixel covers: small text stays readable, not aliased.
        return self._whole.reformat(
            source, format="yuv420p", width=int(source.width * scale) & ~1, height=int(source.height * scale) & ~1,
            interpolation="AREA",
        )

    def _convert_tiles(self, pixels: np.ndarray, tiles: list[int]) -> av.VideoFrame:
        assert self._last is not None
        height, width = even_size(pixels)
        frame = av.VideoFrame(width, height, "yuv420p")
        planes = _planes(frame)
        for plane, last in zip(planes, _planes(self._last), strict=True):
            plane[:] = last
        window_rows = TILE + 2 * MARGIN
        for top in tiles:
            # The window stays inside the picture: at its edges the whole conversion has an edge too.
            window_top = min(max(0, top - MARGIN), height - window_rows)
            converted = _planes(self._window.reformat(
                _bgra(pixels[window_top : window_top + window_rows, :width]), format="yuv420p",
                interpolation="BILINEAR",
            ))
            rows = min(TILE, height - top)
            offset = top - window_top
            planes[0][top : top + rows] = converted[0][offset : offset + rows]
            for chroma, converted_chroma in zip(planes[1:], converted[1:], strict=True):
                chroma[top // 2 : (top + rows) // 2] = converted_chroma[offset // 2 : (offset + rows) // 2]
        return frame


def to_i420(pixels: np.ndarray, scale: float = 1.0) -> av.VideoFrame:
    """``pixels`` (BGRA) as one I420 frame, converted whole (:meth:`I420Converter.convert` without a past)."""
    return I420Converter().convert(pixels, scale)
