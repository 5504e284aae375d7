"""Recording segments made in the test and uploaded as a host would (``PUT .../recording/{index}``,
a still screen's copies as repeats: ``PUT .../recording/{index}/repeat``, and a changing screen's
segments continued from an earlier keyframe: ``PUT .../recording/{index}/continue``)."""

from __future__ import annotations

import hashlib
import io

import av
import httpx
import numpy as np

from host_client.recorder import EncodedSegment, SegmentWriter
from tests.support.api import bearer
from tests.support.broker import BrokerProcess


def webm_segment(shade: int) -> bytes:
    """A standalone one-second VP8 WebM at 2 fps, as the host records it, all one grey ``shade``."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:
        stream = out.add_stream("vp8", rate=2)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for pts in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), shade, np.uint8), format="rgb24")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def one_frame_file(container_format: str, codec: str) -> bytes:
    """One black 64x48 frame encoded with ``codec`` in a ``container_format`` file: what a segment is not."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=2)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return buffer.getvalue()


def put_segment(
    broker: BrokerProcess, session_id: str, host_token: str, index: int, data: bytes, *,
    offset_ms: int, duration_ms: int = 1000, origin_ms: int | None = None,
) -> httpx.Response:
    """Upload one segment with its headers (``origin_ms`` None: none declared, as older hosts do)."""
    headers = {**bearer(host_token), "X-Segment-SHA256": hashlib.sha256(data).hexdigest(),
               "X-Segment-Offset-Ms": str(offset_ms), "X-Segment-Duration-Ms": str(duration_ms)}
    if origin_ms is not None:
        headers["X-Recording-Origin-Ms"] = str(origin_ms)
    return broker.http.put(f"/sessions/{session_id}/recording/{index}", content=data, headers=headers)


def frames_shades(webm: bytes) -> list[tuple[float, int]]:
    """(time in seconds, mean luma) of every frame of a WebM: which segment shows when."""
    with av.open(io.BytesIO(webm)) as container:
        return [(float(frame.time or 0.0), int(frame.to_ndarray(format="gray").mean()))
                for frame in container.decode(video=0)]


def still_segments(shade: int, frames_ms: tuple[int, ...] = (2, 761)) -> tuple[bytes, bytes]:
    """(a segment encoded from one still 320x240 picture, a segment of that picture copying its packets
    at ``frames_ms``), as the host's recorder writes them on a still screen (the copy numbering the first 0)."""
    pixels = np.zeros((240, 320, 4), dtype=np.uint8)
    pixels[..., :3] = shade
    pixels[60:120, 80:200, :3] = 255 - shade
    source = SegmentWriter(2.0, pixels, None)
    for at_ms in (0, 500):
        source.add(pixels, at_ms)
    encoded = source.finish()
    copy = SegmentWriter(2.0, pixels.copy(), EncodedSegment(pixels, encoded, 0))
    for at_ms in frames_ms:
        copy.add(pixels.copy(), at_ms)
    return encoded, copy.finish()


def put_repeat(
    broker: BrokerProcess, session_id: str, host_token: str, index: int, body: dict[str, object],
) -> httpx.Response:
    """``PUT .../recording/{index}/repeat`` with ``body`` as it is."""
    return broker.http.put(f"/sessions/{session_id}/recording/{index}/repeat", json=body, headers=bearer(host_token))


def repeat_body(source: int, data: bytes, *, offset_ms: int, frames_ms: tuple[int, ...] = (2, 761),
                duration_ms: int = 1000, fps: float = 2.0) -> dict[str, object]:
    """A repeat upload's body for the segment ``data`` that copies segment ``source`` at ``frames_ms``."""
    return {"source": source, "sha256": hashlib.sha256(data).hexdigest(), "offset_ms": offset_ms,
            "duration_ms": duration_ms, "fps": fps, "frames_ms": list(frames_ms)}


def typing_pictures(count: int, *, width: int = 640, height: int = 480) -> list[np.ndarray]:
    """``count`` BGRA pictures of a page of text being typed on: lines of random dark "glyphs" on a light
    page (a keyframe of it is several kilobytes, as text is), and each picture one glyph more."""
    rng = np.random.default_rng(7)
    page = np.full((height, width, 4), 235, dtype=np.uint8)
    for top in range(16, height - 80, 14):
        glyphs = rng.random((9, width - 32)) < 0.3
        page[top:top + 9, 16:width - 16, :3][glyphs] = 30
    pictures = []
    for letter in range(count):
        page = page.copy()
        x = 16 + letter * 8
        page[height - 50:height - 41, x:x + 6, :3][rng.random((9, 6)) < 0.5] = 30
        pictures.append(page)
    return pictures


def continued_segments(pictures: list[np.ndarray]) -> tuple[bytes, SegmentWriter]:
    """(a segment encoded from ``pictures[0:2]``, a writer that continued from its keyframe with
    ``pictures[2:4]``, finished): two segments as the host's recorder makes them while typing."""
    source = SegmentWriter(2.0, pictures[0], None)
    for at_ms, pixels in zip((0, 500), pictures[:2], strict=True):
        source.add(pixels, at_ms)
    encoded = source.finish()
    reference = EncodedSegment(pictures[0], encoded, 0, keyframe=source.keyframe)
    continued = SegmentWriter(2.0, pictures[2], None, reference=reference)
    for at_ms, pixels in zip((1, 502), pictures[2:4], strict=True):
        continued.add(pixels, at_ms)
    continued.finish()
    return encoded, continued


def put_continuation(
    broker: BrokerProcess, session_id: str, host_token: str, index: int, tail: bytes, *, source: int, sha256: str,
    offset_ms: int, duration_ms: int = 1000, extra: dict[str, str] | None = None,
) -> httpx.Response:
    """``PUT .../recording/{index}/continue``: a continued segment's own frames, and what it is."""
    headers = {**bearer(host_token), "X-Segment-Source": str(source), "X-Segment-SHA256": sha256,
               "X-Segment-Offset-Ms": str(offset_ms), "X-Segment-Duration-Ms": str(duration_ms), **(extra or {})}
    return broker.http.put(f"/sessions/{session_id}/recording/{index}/continue", content=tail, headers=headers)
