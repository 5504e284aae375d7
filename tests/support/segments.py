"""Recording segments as a host makes them, and uploading them over the REST API as a host does."""

from __future__ import annotations

import hashlib
import io

import av
import httpx
import numpy as np

from tests.support.api import bearer
from tests.support.broker import BrokerProcess


def webm_segment(shade: int, width: int = 160, height: int = 120) -> bytes:
    """A standalone one-second VP8 WebM at 2 fps of one grey ``shade``, as the host records it."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:
        stream = out.add_stream("vp8", rate=2)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for pts in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), shade, np.uint8), format="rgb24")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def put_segment(
    broker: BrokerProcess, session_id: str, host_token: str, index: int, data: bytes,
    *, offset_ms: int, duration_ms: int = 1000,
) -> httpx.Response:
    """Upload one segment as the session's host; the raw response."""
    return broker.http.put(
        f"/sessions/{session_id}/recording/{index}", content=data,
        headers={**bearer(host_token), "X-Segment-SHA256": hashlib.sha256(data).hexdigest(),
                 "X-Segment-Offset-Ms": str(offset_ms), "X-Segment-Duration-Ms": str(duration_ms)},
    )


def frames_shades(webm: bytes) -> list[tuple[float, int]]:
    """(time in seconds, mean luma) of every frame of a WebM: which segment shows when."""
    with av.open(io.BytesIO(webm)) as container:
        return [(float(frame.time or 0.0), int(frame.to_ndarray(format="gray").mean()))
                for frame in container.decode(video=0)]
