"""Recording the shared screen for the audit trail, independently of the live stream.

A thread of its own grabs the selected monitor at the policy's frame rate
(2 fps by default), encodes it with VP8 (libvpx, realtime) and closes a
standalone WebM segment every second, so any segment plays alone and the
broker can join them without re-encoding. Segments go to a spool folder on
disk first; :class:`RecordingUploader` sends them to the broker in order and
deletes them only once stored, so a broker that is away costs nothing but delay.

This encodes a second time, separately from aiortc's live encoder (which offers
no way to tee its packets without reaching deep into its internals); the cost
at 2 fps and 1920x1080 is measured by ``bench/recording_overhead.py``.
"""

from __future__ import annotations

import asyncio
import ctypes
import fractions
import hashlib
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import httpx
import numpy as np

from protocol.api import API_PREFIX
from protocol.recording import RecordingStatus
from protocol.transport import tls_context

from .capture import Monitor, Screen

log = logging.getLogger(__name__)

SEGMENT_SECONDS = 1.0
THREAD_NAME = "recorder"
"""The recording thread's name, also in the OS (``top -H``, ``/proc/<pid>/task/*/comm``)."""
BITRATE = 1_500_000


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` where the OS shows it (Linux only; elsewhere nothing happens).

    Python's thread names stay inside Python; operators and the overhead
    benchmark find the recorder's CPU time by the OS name.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("cannot name the recorder thread in the OS")


PR_SET_NAME = 15


class SegmentRecorder:
    """Writes ``<index>.webm`` + ``<index>.json`` segments into ``spool`` until stopped."""

    def __init__(
        self,
        spool: Path,
        monitor: Callable[[], Monitor],
        visible: Callable[[], bool],
        *,
        fps: float,
        start_index: int = 0,
        start_offset_ms: int = 0,
        on_segment: Callable[[int], None] | None = None,
    ) -> None:
        self._spool = spool
        self._monitor = monitor
        self._visible = visible
        self._fps = fps
        self._index = start_index
        self._origin = time.monotonic() - start_offset_ms / 1000
        self._on_segment = on_segment
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the segment under way and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        name_os_thread(THREAD_NAME)
        try:
            screen = Screen()
        except Exception as exc:  # noqa: BLE001 - reported, and recording_behind() will show it
            self.error = f"cannot record the screen: {exc}"
            log.error(self.error)
            return
        try:
            while not self._stop.is_set():
                self._segment(screen)
        except Exception as exc:  # noqa: BLE001
            self.error = f"recording stopped: {exc}"
            log.exception("recording failed")
        finally:
            screen.close()

    def _segment(self, screen: Screen) -> None:
        monitor = self._monitor()
        width, height = monitor.width & ~1, monitor.height & ~1
        buffer = io.BytesIO()
        output = av.open(buffer, "w", format="webm")
        stream = output.add_stream("libvpx", rate=fractions.Fraction(self._fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = BITRATE
        stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        time_base = fractions.Fraction(1, 1000)
        started = time.monotonic()
        offset_ms = int((started - self._origin) * 1000)
        frames = 0
        black: np.ndarray | None = None
        while True:
            now = time.monotonic()
            if frames and (now - started >= SEGMENT_SECONDS or self._stop.is_set() or self._monitor() != monitor):
                break
            if self._visible():
                frame = screen.grab(monitor)
            else:
                black = black if black is not None else np.zeros((height, width, 3), dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(black, format="rgb24")
            frame = frame.reformat(width=width, height=height, format="yuv420p")
            frame.pts = int((now - started) * 1000)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                output.mux(packet)
            frames += 1
            wait = started + frames / self._fps - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                pass
        for packet in stream.encode():
            output.mux(packet)
        output.close()
        duration_ms = int((time.monotonic() - started) * 1000)
        self._write(buffer.getvalue(), offset_ms, duration_ms)

    def _write(self, data: bytes, offset_ms: int, duration_ms: int) -> None:
        stem = self._spool / f"{self._index:08d}"
        meta = {"index": self._index, "offset_ms": offset_ms, "duration_ms": duration_ms,
                "sha256": hashlib.sha256(data).hexdigest(), "created": time.time()}
        stem.with_suffix(".webm.tmp").write_bytes(data)
        os.replace(stem.with_suffix(".webm.tmp"), stem.with_suffix(".webm"))
        stem.with_suffix(".json").write_text(json.dumps(meta))  # the marker: the segment is whole
        index = self._index
        self._index += 1
        if self._on_segment is not None:
            self._on_segment(index)


class RecordingUploader:
    """Sends spooled segments to the broker in order; tells how far behind recording is."""

    def __init__(self, broker_url: str, token: str, session_id: str, spool: Path) -> None:
        self._base = f"{broker_url.rstrip('/')}{API_PREFIX}/sessions/{session_id}/recording"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._spool = spool
        self._wake = asyncio.Event()
        self.uploaded = 0

    async def status(self) -> RecordingStatus:
        """What the broker already holds (a restarted host continues after it)."""
        async with httpx.AsyncClient(timeout=10, verify=tls_context()) as client:
            response = await client.get(self._base, headers=self._headers)
            response.raise_for_status()
            return RecordingStatus.model_validate_json(response.content)

    def segment_ready(self, _index: int) -> None:
        self._wake.set()

    def pending(self) -> list[Path]:
        return sorted(self._spool.glob("*.json"))

    def lag_seconds(self) -> float:
        """Age of the oldest segment not yet stored at the broker (0 when none waits)."""
        waiting = self.pending()
        if not waiting:
            return 0.0
        try:
            created = json.loads(waiting[0].read_text())["created"]
        except (OSError, ValueError, KeyError):
            return 0.0
        return max(0.0, time.time() - float(created) - SEGMENT_SECONDS)

    async def run(self) -> None:
        """Upload forever (cancel to stop); retries with backoff while the broker is away."""
        delay = 0.5
        async with httpx.AsyncClient(timeout=30, verify=tls_context()) as client:
            while True:
                self._wake.clear()
                if await self._upload_all(client):
                    delay = 0.5
                    try:
                        await asyncio.wait_for(self._wake.wait(), 1.0)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)

    async def drain(self, timeout: float) -> bool:
        """Upload everything spooled, for at most ``timeout`` seconds; True when nothing is left."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(timeout=30, verify=tls_context()) as client:
            while self.pending():
                if await self._upload_all(client):
                    continue
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.5)
        return True

    async def _upload_all(self, client: httpx.AsyncClient) -> bool:
        for marker in self.pending():
            try:
                meta = json.loads(marker.read_text())
                data = marker.with_suffix(".webm").read_bytes()
            except (OSError, ValueError):
                log.warning("dropping an unreadable spooled segment %s", marker.name)
                marker.unlink(missing_ok=True)
                continue
            try:
                response = await client.put(
                    f"{self._base}/{meta['index']}", content=data,
                    headers={**self._headers, "X-Segment-SHA256": meta["sha256"],
                             "X-Segment-Offset-Ms": str(meta["offset_ms"]),
                             "X-Segment-Duration-Ms": str(meta["duration_ms"])},
                )
            except httpx.HTTPError as exc:
                log.info("recording upload paused: %s", exc)
                return False
            if response.status_code >= 500 or response.status_code in (401, 404, 410):
                # Broker away or restarting (or the grace after the end ran out): keep the segment.
                return False
            if response.status_code >= 400 and response.status_code != 409:
                log.warning("the broker refused segment %s: %s", meta["index"], response.text[:200])
            marker.unlink(missing_ok=True)
            marker.with_suffix(".webm").unlink(missing_ok=True)
            self.uploaded += 1
        return True
