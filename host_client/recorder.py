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

A static screen is not encoded again every second. Each grab (mss's buffer, no
copy) is compared with the picture of the last segment that was encoded from one
unchanging picture; while they are the same, a segment is written by copying
that segment's packets (its keyframe first) with this segment's own timestamps:
the same frame count, timestamps, duration and offset an encoded segment would
have, and the same WebM header, so it plays alone and joins like any other. At
the first frame that differs a fresh encoder takes over for the rest of the
segment, starting with a keyframe. Recording a still screen then costs a grab
and a comparison per frame (``bench/recorder_static.py``), and uploading it a
few hundred bytes a second: such a segment goes to the broker as a *repeat*
(which segment it copies, the frame rate and the frame times), and the broker
makes the same bytes with the same code (:mod:`protocol.segment_repeat`).
Whole segments give way to the live stream while it finds the link congested
(:mod:`host_client.upload_yield`); ``bench/recording_uplink.py`` measures the
uplink the recording takes. While the live stream finds the link congested, segments are
encoded at a lower bitrate (:mod:`host_client.recording_quality`): the same segments, smaller.
"""

from __future__ import annotations

import asyncio
import ctypes
import fractions
import hashlib
import io
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from pydantic import ValidationError

from peer.broker_client import BrokerClient
from peer.broker_errors import BrokerRefusal
from protocol.api import API_PREFIX
from protocol.recording import RecordingStatus, SegmentRepeatUpload, SessionPolicy
from protocol.segment_continuation import continued_segment
from protocol.segment_repeat import Repetition, SegmentRepeat, frame_rate, segment_output
from protocol.waits import wait_until_set

from .capture import Monitor, Screen
from .colour_conversion import to_i420
from .recording_quality import FULL_BITRATE, RecordingQuality, quality_level
from .recording_time import SpooledSegment
from .upload_yield import PACE_CHUNK_BYTES, UploadYield, WaitingSegment

log = logging.getLogger(__name__)

SEGMENT_SECONDS = 1.0
REFRESH_SHARE = 0.5
"""A segment whose first frame, continued, would take more than this share of the reference's keyframe gets a
keyframe of its own (:func:`moved_away`); one whose continued frames took more is followed by a segment with a
keyframe of its own (:func:`continuing_costs_more`)."""
THREAD_NAME = "recorder"
"""The recording thread's name, also in the OS (``top -H``, ``/proc/<pid>/task/*/comm``)."""
ENCODER_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
MILLISECOND = fractions.Fraction(1, 1000)
UPLOAD_TIMEOUT = 30.0
"""Seconds to connect and for each read while a segment goes to the broker."""
STATUS_TIMEOUT = 10.0
"""Seconds to connect and to read when asking the broker what it holds."""


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


def spool_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all. The uploader (another thread) lists and reads the spool meanwhile: a
    marker it found half written was unreadable, and it dropped the segment (seen on a loaded CI runner)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class SegmentRecorder:
    """Writes ``<index>.webm`` + ``<index>.json`` segments (and a continued one's own frames, ``<index>.tail``) into
    ``spool`` until stopped."""

    def __init__(
        self,
        spool: Path,
        monitor: Callable[[], Monitor],
        visible: Callable[[], bool],
        *,
        fps: float,
        start_index: int = 0,
        start_offset_ms: int = 0,
        origin_ms: int | None = None,
        on_segment: Callable[[int], None] | None = None,
        link_congested: Callable[[], bool] | None = None,
        continuations: bool = True,
    ) -> None:
        """Segments are numbered from ``start_index``; the first starts ``start_offset_ms`` after
        the recording's origin, ``origin_ms`` (Unix ms), which each segment's metadata notes.

        ``link_congested`` says whether the link is the limit for the recording now (the live stream
        finds it congested, or has not shown it carries a full recording; called on the recorder's
        thread, so it must only read, e.g. a boolean); None: the link is never the limit. ``continuations``
        False encodes every changing segment from its own keyframe (the benchmark's "before")."""
        self._spool = spool
        self._monitor = monitor
        self._visible = visible
        self._fps = fps
        self._index = start_index
        # Offsets advance with the monotonic clock: a wall-clock jump mid-session moves nothing.
        self._zero = time.monotonic() - start_offset_ms / 1000
        """The monotonic-clock moment that offset 0 stands for."""
        self._origin_ms = origin_ms
        self._on_segment = on_segment
        self._link_congested = link_congested
        self.quality = RecordingQuality()
        """The bitrate each segment is encoded at; only the recorder's thread asks it."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.segments_encoded = 0
        """Segments written with the encoder (wholly or from a change on)."""
        self.segments_replayed = 0
        """Segments of a static screen written from the packets of an earlier one, without encoding."""
        self.segments_limited = 0
        """Segments encoded (wholly or partly) at the limited bitrate, while the link was the limit."""
        self.segments_continued = 0
        """Segments encoded after an earlier segment's keyframe (:mod:`protocol.segment_continuation`)."""
        self._reference: EncodedSegment | None = None
        """The last segment encoded from its first frame: the next continues from its keyframe."""
        self._continuations = continuations
        self._refresh = False
        """The next segment starts with a keyframe of its own (:func:`continuing_costs_more`)."""
        self._frames_per_segment = max(1, math.ceil(fps * SEGMENT_SECONDS))
        self._replayable: EncodedSegment | None = None
        self._black: np.ndarray | None = None
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
        except Exception as exc:
            self.error = f"recording stopped: {exc}"
            log.exception("recording failed")
        finally:
            screen.close()

    def _segment(self, screen: Screen) -> None:
        monitor = self._monitor()
        started = time.monotonic()
        offset_ms = int((started - self._zero) * 1000)
        congested = self._link_congested is not None and self._link_congested()
        bitrate = self.quality.bitrate(started, congested=congested)
        # A still screen recorded while the link was the limit is encoded afresh at full quality once it is
        # not (one keyframe); one recorded at full quality is copied whatever the link.
        replayable = self._replayable if self._replayable is not None and self._replayable.bitrate >= bitrate else None
        writer: SegmentWriter | None = None
        frames = 0
        while True:
            now = time.monotonic()
            if frames and (now - started >= SEGMENT_SECONDS or self._stop.is_set() or self._monitor() != monitor):
                break
            pixels = self._pixels(screen, monitor)
            if writer is None:
                writer = SegmentWriter(self._fps, pixels, replayable, bitrate=bitrate,
                                       reference=self._reference if self._continuations and not self._refresh else None)
            writer.add(pixels, int((now - started) * 1000))
            frames += 1
            wait = started + frames / self._fps - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                pass
        assert writer is not None
        data = writer.finish()
        duration_ms = int((time.monotonic() - started) * 1000)
        if writer.encoded:
            self.segments_encoded += 1
            self.segments_limited += bitrate != FULL_BITRATE
            self.segments_continued += writer.continued is not None
            if writer.encoded_from_start:
                encoded = EncodedSegment(writer.first, data, self._index, bitrate, writer.keyframe)
                self._reference = encoded
                # A segment cut short (stopping, a late thread) has too few packets to stand in for a whole one.
                if writer.one_picture and frames >= self._frames_per_segment:
                    self._replayable = encoded
        else:
            self.segments_replayed += 1
        self._refresh = continuing_costs_more(writer)
        self._write(data, offset_ms, duration_ms, writer.repetition(), bitrate if writer.encoded else None,
                    writer.continued.index if writer.continued is not None else None, writer.tail)

    def _pixels(self, screen: Screen, monitor: Monitor) -> np.ndarray:
        """What to record now: the monitor's BGRA pixels, or black while the user does not allow viewing."""
        if self._visible():
            return screen.grab_pixels(monitor)  # a new buffer each grab: safe to keep without a copy
        if self._black is None or self._black.shape[:2] != (monitor.height, monitor.width):
            self._black = np.zeros((monitor.height, monitor.width, 4), dtype=np.uint8)
        return self._black

    def _write(self, data: bytes, offset_ms: int, duration_ms: int, repetition: Repetition | None,
               bitrate: int | None, continues: int | None = None, tail: bytes | None = None) -> None:
        """Spool a segment; ``bitrate``: the bit/s its encoded part had (None: all copied), for the figures;
        ``continues``: the segment whose keyframe it continues from, and ``tail`` its own frames."""
        stem = self._spool / f"{self._index:08d}"
        meta = {"index": self._index, "offset_ms": offset_ms, "duration_ms": duration_ms, "origin_ms": self._origin_ms,
                "sha256": hashlib.sha256(data).hexdigest(), "created": time.time(),
                "repeats": asdict(repetition) if repetition is not None else None, "bitrate": bitrate,
                "continues": continues}
        spool_file(stem.with_suffix(".webm"), data)
        if tail is not None:
            spool_file(stem.with_suffix(".tail"), tail)
        spool_file(stem.with_suffix(".json"), json.dumps(meta).encode())  # the marker: the segment is whole
        index = self._index
        self._index += 1
        if self._on_segment is not None:
            self._on_segment(index)


def behind(created: float, now: float) -> float:
    """How far behind a segment spooled at ``created`` is at ``now`` (wall-clock seconds): its age, less
    the :data:`SEGMENT_SECONDS` it records."""
    return max(0.0, now - created - SEGMENT_SECONDS)


def moved_away(packets: list[av.Packet], reference: EncodedSegment) -> bool:
    """Whether a continued segment's first frame, encoded as ``packets``, took more than :data:`REFRESH_SHARE`
    of ``reference``'s keyframe: the screen has moved away from it (a scroll, another window), so the segment
    is better encoded with a keyframe of its own (the frames after it would cost more still)."""
    return sum(packet.size for packet in packets) > REFRESH_SHARE * len(reference.keyframe)


def continuing_costs_more(writer: SegmentWriter) -> bool:
    """Whether the segment after the one ``writer`` made should start with a keyframe of its own, not
    continue from the same reference.

    A continued segment that showed one picture throughout is a still screen: a keyframe of
    its own makes the segments after it repeats (a few hundred bytes each). One whose frames
    took more than :data:`REFRESH_SHARE` of the reference's keyframe shows a screen that has
    moved away from it (a scroll): the next continued segment would cost about as much as a
    keyframe, and every one after it more. One that left its reference at the first frame
    (:attr:`SegmentWriter.left_reference`) has a keyframe of the screen as it is now: the next
    segment continues from it unless this one's own frames after it took more than
    :data:`REFRESH_SHARE` of it too (a moving screen: each try costs the recorder a keyframe and
    a frame it throws away, so the next one does not try, the one after it does again). Not
    trying after every segment that left its reference cost a session's start a keyframe more:
    the first segment's keyframe is the screen before consent (black), the second leaves it,
    and the third made a keyframe of its own where typing continued at a sixth of that
    (segments of 54, 59 and 60 kB, then 9 kB, at 1 Mbit/s through the link emulator).
    """
    if writer.left_reference:
        return writer.own_frames_bytes > REFRESH_SHARE * len(writer.keyframe)
    if writer.continued is None or writer.tail is None:
        return False
    return writer.one_picture or len(writer.tail) > REFRESH_SHARE * len(writer.continued.keyframe)


def same_pixels(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two BGRA grabs are the same picture (about 0.4 ms at 1920x1080)."""
    return a is b or (a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32)))


@dataclass(frozen=True)
class EncodedSegment:
    """A segment the encoder made from its first frame: that frame's picture, the WebM, and its keyframe.

    One made from one picture throughout can be repeated while the screen stays still;
    any can be continued from (its keyframe, :mod:`protocol.segment_continuation`)."""

    pixels: np.ndarray
    webm: bytes
    index: int
    """The segment's number: a segment copying its packets, or continuing from its keyframe, names it to the broker."""
    bitrate: int = FULL_BITRATE
    """The bit/s it was encoded at."""
    keyframe: bytes = b""
    """Its first frame's bytes (empty: not known, so it is not continued from)."""


class SegmentWriter:
    """One standalone WebM segment, fed a frame at a time.

    When the first frame shows the picture of ``replayable``, the segment starts by
    copying that segment's packets with this segment's timestamps (exactly those
    an encoder gives: the frame's milliseconds in the codec's 1/fps time base) on
    a stream set up as the encoder's would be (:class:`protocol.segment_repeat.SegmentRepeat`,
    the code the broker rebuilds such a segment with); the first frame that differs,
    or one past the copied packets, starts a fresh encoder (a keyframe) for the
    rest.

    Otherwise, given a ``reference`` of the same size and bitrate, the segment
    continues from its keyframe (:mod:`protocol.segment_continuation`): a fresh encoder
    is given the reference's first picture, and if it makes the very bytes of the
    reference's keyframe, every frame of this segment is encoded as an inter frame
    after it; only those (:attr:`tail`) go to the broker. If the bytes differ (another
    libvpx), or the first frame costs more than :data:`REFRESH_SHARE` of that keyframe
    (:func:`moved_away`), the segment is encoded from its first frame, as always, at
    ``bitrate`` (:mod:`host_client.recording_quality`).
    """

    def __init__(self, fps: float, first: np.ndarray, replayable: EncodedSegment | None, *,
                 bitrate: int = FULL_BITRATE, reference: EncodedSegment | None = None) -> None:
        self.first = first
        self.one_picture = True
        """Every frame so far showed the first frame's picture."""
        self.frames_ms: list[int] = []
        """Each frame's time from the segment's start, in ms."""
        self.repeated: int | None = None
        """The index of the segment whose packets this one copies (None: encoded from its start)."""
        self.continued: EncodedSegment | None = None
        """The segment whose keyframe this one continues from (None: it does not)."""
        self.tail: bytes | None = None
        """A continued segment's own frames, as a WebM (set by :meth:`finish`): what the broker is sent."""
        self.keyframe = b""
        """The first frame's bytes, when the encoder made it."""
        self.left_reference = False
        """The first frame moved away from the reference (:func:`moved_away`): a keyframe of its own instead."""
        self.own_frames_bytes = 0
        """Bytes of the frames after its own keyframe, when encoded from its first frame."""
        self._fps = fps
        self._bitrate = bitrate
        self._rate = frame_rate(fps)
        self._width, self._height = first.shape[1] & ~1, first.shape[0] & ~1
        self._repeat: SegmentRepeat | None = None
        self._encoder: av.CodecContext | None = None
        self._open_output()
        if replayable is not None and same_pixels(replayable.pixels, first):
            self._repeat = SegmentRepeat(self._output, replayable.webm, self._rate)
            self._stream = self._repeat.stream
            self.repeated = replayable.index
        else:
            self._open_encoder()
            if reference is not None and self._continues_from(reference):
                self.continued = reference
            elif reference is not None:
                self._open_output()  # the encoder has seen the reference's picture: start again
                self._open_encoder()
        self.encoded_from_start = self._encoder is not None and self.continued is None

    @property
    def encoded(self) -> bool:
        """Whether the encoder made any of this segment."""
        return self._encoder is not None

    def repetition(self) -> Repetition | None:
        """What the broker needs to rebuild this segment from the one it repeats (None: it was encoded)."""
        if self.encoded or self.repeated is None:
            return None
        return Repetition(self.repeated, self._fps, tuple(self.frames_ms))

    def add(self, pixels: np.ndarray, pts_ms: int) -> None:
        """One frame, ``pts_ms`` after the segment's start."""
        same = same_pixels(self.first, pixels)
        self.one_picture = self.one_picture and same
        self.frames_ms.append(pts_ms)
        if self._encoder is None:
            if same and self._repeat is not None and self._repeat.remaining:
                self._repeat.add(pts_ms)
                return
            self._encoder = self._configure(av.CodecContext.create("libvpx", "w"))
            self._encoder.time_base = 1 / self._rate
        packets = self._encode(pixels, pts_ms)
        if self.continued is not None and len(self.frames_ms) == 1 and moved_away(packets, self.continued):
            self.continued = None
            self.left_reference = True
            self._open_output()
            self._open_encoder()
            self.encoded_from_start = True
            packets = self._encode(pixels, pts_ms)
        self._mux(packets)

    def finish(self) -> bytes:
        """The segment's WebM bytes."""
        if self._encoder is not None:
            self._mux(self._encoder.encode(None))
        self._output.close()
        data = self._buffer.getvalue()
        if self.continued is None:
            return data
        self.tail = data
        return continued_segment(self.continued.webm, data)

    def _open_output(self) -> None:
        self._buffer = io.BytesIO()
        self._output = segment_output(self._buffer)

    def _open_encoder(self) -> None:
        self._stream = self._output.add_stream("libvpx", rate=self._rate)
        self._encoder = self._configure(self._stream.codec_context)

    def _continues_from(self, reference: EncodedSegment) -> bool:
        """Give the encoder the reference's picture; whether it made the reference's keyframe (then unmuxed)."""
        if not reference.keyframe or reference.bitrate != self._bitrate or reference.pixels.shape != self.first.shape:
            return False
        return [bytes(packet) for packet in self._encode(reference.pixels, 0)] == [reference.keyframe]

    def _encode(self, pixels: np.ndarray, pts_ms: int) -> list[av.Packet]:
        assert self._encoder is not None
        frame = to_i420(pixels)
        frame.pts = pts_ms
        frame.time_base = MILLISECOND
        return self._encoder.encode(frame)

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if not self.keyframe and self.encoded_from_start:
                self.keyframe = bytes(packet)
            elif self.encoded_from_start:
                self.own_frames_bytes += packet.size
            packet.stream = self._stream
            self._output.mux(packet)

    def _configure(self, context: av.CodecContext) -> av.CodecContext:
        context.width, context.height, context.pix_fmt = self._width, self._height, "yuv420p"
        context.framerate = self._rate
        context.bit_rate = self._bitrate
        level = str(quality_level(self._bitrate))
        context.options = {**ENCODER_OPTIONS, "crf": level, "qmin": level}
        return context


def segment_headers(meta: dict[str, Any]) -> dict[str, str]:
    """The ``X-Segment-*`` headers that say what a spooled segment is (``meta``: its metadata)."""
    headers = {"X-Segment-SHA256": meta["sha256"], "X-Segment-Offset-Ms": str(meta["offset_ms"]),
               "X-Segment-Duration-Ms": str(meta["duration_ms"])}
    if meta.get("origin_ms") is not None:
        headers["X-Recording-Origin-Ms"] = str(meta["origin_ms"])
    return headers


class RecordingUploader:
    """Sends spooled segments to the broker in order; tells how far behind recording is.

    A segment that repeats an earlier one's packets (a still screen) goes as a repeat: a few
    hundred bytes from which the broker rebuilds it (``PUT .../recording/{index}/repeat``); if
    the broker does not take it, it goes whole. Whole segments wait while the live stream is
    congested, as long as the recording's lag allows (:class:`~host_client.upload_yield.UploadYield`).

    Its connections to the broker (its own, unless ``broker`` is shared) stay open while it
    uploads or asks, and close once it stops.
    """

    def __init__(
        self, broker_url: str, token: str, session_id: str, spool: Path, *, broker: BrokerClient | None = None,
        live_congested: Callable[[], bool] | None = None,
        live_starting: Callable[[], bool] = lambda: False,
        live_limit: Callable[[], float | None] | None = None,
        live_sharpening: Callable[[], bool] = lambda: False,
        max_lag_seconds: Callable[[], float] = lambda: SessionPolicy().recording_max_lag_seconds,
        by_reference: bool = True,
    ) -> None:
        """``live_congested`` says whether the live stream finds the link congested (None: there is none to
        yield to); ``live_starting`` whether its connection is being set up or sending its first picture
        (:func:`~host_client.upload_yield.first_picture_due`: uploads wait then too); ``live_limit`` is the
        live stream's target bit rate while the link limits it (None: not limited; uploads are then paced
        to a share of it, :meth:`UploadYield.pace`); ``live_sharpening`` whether its settled picture is being
        sharpened (uploads wait then, as long as the deadlines allow: :meth:`UploadYield.defer_due`);
        ``max_lag_seconds`` is the policy's bound on the
        recording's lag; ``by_reference`` False uploads every segment whole, none as a repeat or a
        continuation of an earlier one (the benchmark's "before")."""
        self._path = f"{API_PREFIX}/sessions/{session_id}/recording"
        self._owns_broker = broker is None
        self._broker = broker or BrokerClient(broker_url, token)
        self._users = 0
        self._spool = spool
        self._wake = asyncio.Event()
        self._live_congested = live_congested
        self._live_starting = live_starting
        self._live_limit = live_limit
        self._live_sharpening = live_sharpening
        self._max_lag_seconds = max_lag_seconds
        self._by_reference = by_reference
        self.yielding = UploadYield()
        """When uploads wait for the live stream."""
        self.uploaded = 0
        """Segments done with (stored, or refused for good)."""
        self.repeats_uploaded = 0
        """Segments stored as repeats of an earlier one."""
        self.continuations_uploaded = 0
        """Segments stored by their own frames, continuing from an earlier one's keyframe."""
        self.bytes_sent = 0
        """Request bodies sent to store segments: whole segments, and repeats' JSON."""
        self.paced_seconds = 0.0
        """Seconds uploads spent held to the pace (:meth:`UploadYield.pace`), in all."""
        self.pacing = 0.0
        """Bytes per second the upload under way is written at (0: none is, or it goes unpaced): the live
        stream leaves it that much of the link (:attr:`peer.stream_budget.StreamBudget.upload_share`)."""
        self.stored: tuple[float, float] | None = None
        """(when, bit/s): the newest upload of more than :data:`PACE_CHUNK_BYTES` the broker stored, on the
        monotonic clock, and the rate it went at (its bytes over the time from the request to the broker's
        answer): what the link carried for the recording then, however its body was paced
        (:meth:`peer.stream_budget.StreamBudget.upload_stored`). None before the first."""

    @asynccontextmanager
    async def _connected(self) -> AsyncIterator[BrokerClient]:
        """The broker client, for as long as someone uses it: the last one out closes an own pool."""
        self._users += 1
        try:
            yield self._broker
        finally:
            self._users -= 1
            if self._users == 0 and self._owns_broker:
                await self._broker.aclose()

    async def status(self) -> RecordingStatus:
        """What the broker already holds (a restarted host continues after it); raises :class:`BrokerRefusal`."""
        async with self._connected() as broker:
            return await broker.call("GET", self._path, RecordingStatus, refusal=BrokerRefusal, timeout=STATUS_TIMEOUT)

    def segment_ready(self, _index: int) -> None:
        self._wake.set()

    def pending(self) -> list[Path]:
        return sorted(self._spool.glob("*.json"))

    def spooled(self) -> list[SpooledSegment]:
        """The segments waiting in the spool, as far as their metadata can be read."""
        segments = []
        for marker in self.pending():
            try:
                meta = json.loads(marker.read_text())
                origin = meta.get("origin_ms")
                segments.append(SpooledSegment(
                    int(meta["index"]), int(meta["offset_ms"]), int(meta["duration_ms"]),
                    int(origin) if origin is not None else None,
                ))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # the uploader drops it
        return segments

    def lag_seconds(self) -> float:
        """Age of the oldest segment not yet stored at the broker (0 when none waits)."""
        waiting = self.pending()
        if not waiting:
            return 0.0
        try:
            created = json.loads(waiting[0].read_text())["created"]
        except (OSError, ValueError, KeyError):
            return 0.0
        return behind(float(created), time.time())

    async def run(self) -> None:
        """Upload forever (cancel to stop); retries with backoff while the broker is away."""
        delay = 0.5
        async with self._connected() as broker:
            while True:
                self._wake.clear()
                if await self._upload_all(broker):
                    delay = 0.5
                    await wait_until_set(self._wake, 1.0)
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)

    async def drain(self, timeout: float) -> bool:
        """Upload everything spooled, for at most ``timeout`` seconds; True when nothing is left.

        Called once the session is over: nothing waits or is paced for the live stream, which is
        ending (paced to a share of its last target, a backlog of a few segments took longer than
        the ``timeout``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        self._live_limit = None
        async with self._connected() as broker:
            while self.pending():
                if await self._upload_all(broker, yielding=False):
                    continue
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.5)
        return True

    async def _upload_all(self, broker: BrokerClient, *, yielding: bool = True) -> bool:
        """Upload what is spooled, in order; False when the broker is away (what is left stays).

        ``yielding``: whole segments wait while the live stream is congested (:class:`UploadYield`).
        """
        for marker in self.pending():
            try:
                meta = json.loads(marker.read_text())
                data = marker.with_suffix(".webm").read_bytes()
            except (OSError, ValueError):
                log.warning("dropping an unreadable spooled segment %s", marker.name)
                marker.unlink(missing_ok=True)
                continue
            repeat = self._repeat_upload(meta) if self._by_reference else None
            if repeat is not None:
                stored = await self._send_repeat(broker, meta["index"], repeat)
                if stored is None:
                    return False
                if stored:
                    self._done(marker)
                    self.repeats_uploaded += 1
                    continue
            tail = self._tail(marker, meta) if self._by_reference else None
            if tail is not None:
                if yielding:
                    await self._yield_to_live(len(tail))
                stored = await self._send_continuation(broker, meta, tail)
                if stored is None:
                    return False
                if stored:
                    self._done(marker)
                    self.continuations_uploaded += 1
                    continue
            if yielding:
                await self._yield_to_live(len(data))
            started = time.monotonic()
            try:
                reply = await broker.send(
                    "PUT", f"{self._path}/{meta['index']}", refusal=BrokerRefusal, data=self._body(data),
                    headers=segment_headers(meta), timeout=UPLOAD_TIMEOUT,
                )
                self.bytes_sent += len(data)
            except BrokerRefusal as unreachable:
                log.info("recording upload paused: %s", unreachable.message)
                return False
            if reply.status >= 500 or reply.status in (401, 404, 410):
                # Broker away or restarting (or the grace after the end ran out): keep the segment.
                return False
            if reply.status >= 400:
                # Refused for good (it can never fit): keeping it would hold up every later segment.
                log.warning("the broker refused segment %s: %s", meta["index"], reply.refusal(BrokerRefusal).message)
            else:
                self._note_stored(len(data), started)
            self._done(marker)
        return True

    def _note_stored(self, size: int, started: float) -> None:
        """An upload of ``size`` bytes, requested at ``started`` (monotonic), was stored just now (:attr:`stored`).
        A small one says little of the link: its request and answer take a round trip or two of their own."""
        if size > PACE_CHUNK_BYTES:
            now = time.monotonic()
            self.stored = (now, 8 * size / max(now - started, 1e-3))

    @staticmethod
    def _tail(marker: Path, meta: dict[str, Any]) -> bytes | None:
        """A continued segment's own frames, spooled beside it (None: it is not one, or they are unreadable)."""
        if not isinstance(meta.get("continues"), int):
            return None
        try:
            return marker.with_suffix(".tail").read_bytes()
        except OSError:
            return None

    async def _send_continuation(self, broker: BrokerClient, meta: dict[str, Any], tail: bytes) -> bool | None:
        """Store a continued segment by its own frames: True stored, False refused (it goes whole), None broker away."""
        headers = {**segment_headers(meta), "X-Segment-Source": str(meta["continues"])}
        return await self._send_by_reference(broker, meta["index"], "continue", len(tail),
                                             data=self._body(tail), headers=headers)

    def _done(self, marker: Path) -> None:
        marker.unlink(missing_ok=True)
        marker.with_suffix(".webm").unlink(missing_ok=True)
        marker.with_suffix(".tail").unlink(missing_ok=True)
        self.uploaded += 1

    @staticmethod
    def _repeat_upload(meta: dict[str, Any]) -> SegmentRepeatUpload | None:
        """The repeat upload of a spooled segment that repeats an earlier one (None: it must go whole)."""
        repeats = meta.get("repeats")
        if not isinstance(repeats, dict):
            return None
        try:
            return SegmentRepeatUpload(
                source=repeats["source"], fps=repeats["fps"], frames_ms=repeats["frames_ms"], sha256=meta["sha256"],
                offset_ms=meta["offset_ms"], duration_ms=meta["duration_ms"], origin_ms=meta.get("origin_ms"),
            )
        except (KeyError, ValidationError):
            return None

    async def _send_repeat(self, broker: BrokerClient, index: int, repeat: SegmentRepeatUpload) -> bool | None:
        """Store segment ``index`` as a repeat: True stored, False refused (it goes whole), None broker away."""
        return await self._send_by_reference(broker, index, "repeat", len(repeat.model_dump_json()), body=repeat)

    async def _send_by_reference(self, broker: BrokerClient, index: int, way: str, size: int,
                                 **request: Any) -> bool | None:
        """``PUT .../recording/{index}/{way}`` (``repeat`` or ``continue``, a body of ``size`` bytes):
        True stored, False refused (it goes whole), None broker away."""
        started = time.monotonic()
        try:
            reply = await broker.send("PUT", f"{self._path}/{index}/{way}", refusal=BrokerRefusal,
                                      timeout=UPLOAD_TIMEOUT, **request)
            self.bytes_sent += size
        except BrokerRefusal as unreachable:
            log.info("recording upload paused: %s", unreachable.message)
            return None
        if reply.status >= 500 or reply.status in (401, 410, 429):
            return None
        if reply.status >= 400:
            # The broker cannot make it (its source was refused, another FFmpeg muxes other bytes, an
            # older broker without the route): the segment's whole bytes are in the spool.
            log.info("the broker did not take segment %s by reference (%s: %s); uploading it whole", index, way,
                     reply.refusal(BrokerRefusal).message)
            return False
        self._note_stored(size, started)
        return True

    def waiting_segments(self) -> list[WaitingSegment]:
        """The segments waiting in the spool, oldest first: what each one's upload takes, and how far behind it is."""
        now = time.time()
        waiting = []
        for marker in self.pending():
            try:
                meta = json.loads(marker.read_text())
                created, seconds = float(meta["created"]), float(meta["duration_ms"]) / 1000
            except (OSError, ValueError, KeyError, TypeError):
                continue  # the uploader drops it
            waiting.append(WaitingSegment(self._upload_bytes(marker, meta), behind(created, now), seconds))
        return waiting

    def waiting_bytes(self) -> int:
        """Bytes the segments waiting in the spool will take to upload (a continued one's own frames, a repeat's
        reference)."""
        return sum(segment.upload_bytes for segment in self.waiting_segments())

    def _upload_bytes(self, marker: Path, meta: dict[str, Any]) -> int:
        repeat = self._repeat_upload(meta) if self._by_reference else None
        if repeat is not None:
            return len(repeat.model_dump_json())
        for upload in (marker.with_suffix(".tail"), marker.with_suffix(".webm")):
            if upload.suffix == ".tail" and not self._by_reference:
                continue
            with suppress(OSError):
                return upload.stat().st_size
        return 0

    def live_reserve(self, lag_seconds: float, *, still_seconds: float = 0.0, limited: bool = True,
                     capacity: float | None = None, sharpening: bool = False) -> float:
        """Bit/s the live stream should leave the recording's uploads now (:meth:`UploadYield.reserve`), the
        oldest waiting segment being ``lag_seconds`` behind (:meth:`lag_seconds`, read once by the caller)
        and the screen still for ``still_seconds``; none while the link does not limit the live stream
        (not ``limited``): uploads then go as they would with no part set aside (on a fast link whose
        receiver has not yet shown 3 Mbit/s, at the part's pace they were held to a few tens of kB/s).
        Given the link's ``capacity`` (bit/s), also whether uploads may wait for a settled picture
        (:meth:`UploadYield.defer_due`); none is set aside while it is ``sharpening`` and they may."""
        if not limited:
            self.yielding.release()
            return 0.0
        max_lag = self._max_lag_seconds()
        # The spool's sizes are read only when they count (it asks every half second): for the deadlines, while
        # the link limits the live stream.
        waiting = None
        if capacity is not None:
            waiting = self.waiting_segments()
            self.yielding.defer_due(waiting, max_lag_seconds=max_lag, capacity=capacity)
            if sharpening and self.yielding.may_defer:
                self.yielding.reserved_rate = 0.0
                return 0.0
        if not self.yielding.reserve_due(lag_seconds=lag_seconds, max_lag_seconds=max_lag):
            return 0.0
        return self.yielding.reserve(self.waiting_segments() if waiting is None else waiting,
                                     max_lag_seconds=max_lag, still_seconds=still_seconds)

    def _pace(self) -> float | None:
        """Bytes per second to write an upload at now (None: unpaced), :meth:`UploadYield.pace`."""
        if self._live_limit is None:
            return None
        return self.yielding.pace(live_limit=self._live_limit(), lag_seconds=self.lag_seconds(),
                                  max_lag_seconds=self._max_lag_seconds(), sharpening=self._live_sharpening())

    def current_pace(self) -> float:
        """Bytes per second the upload under way goes at from its next piece on (0: none is paced): its pace
        asked again (:meth:`UploadYield.pace`), not the one its last piece was written at. A settled picture
        that starts to sharpen holds it to the floor at once, and the live stream, told the last piece's pace,
        left the upload 0.66 Mbit/s of a 0.82 Mbit/s link for another half second."""
        if self.pacing:
            self.pacing = self._pace() or 0.0
        return self.pacing

    def _body(self, data: bytes) -> bytes | AsyncIterator[bytes]:
        """The upload's body: ``data`` at once when there is no live stream to pace for, else piece by
        piece, at the pace while the link limits the live stream (a TCP upload unpaced fills the
        bottleneck queue in front of the picture); the pace is asked for each piece, so a link found
        limited during an upload paces its rest."""
        if len(data) <= PACE_CHUNK_BYTES or self._live_limit is None:
            return data
        return self._paced(data)

    async def _paced(self, data: bytes) -> AsyncIterator[bytes]:
        paced = 0.0
        try:
            for start in range(0, len(data), PACE_CHUNK_BYTES):
                piece = data[start:start + PACE_CHUNK_BYTES]
                yield piece
                rate = self._pace()
                self.pacing = rate or 0.0
                if rate is not None:
                    paced += len(piece) / rate
                    await asyncio.sleep(len(piece) / rate)
        finally:
            self.pacing = 0.0
        if paced:
            self.paced_seconds += paced
            log.info("a recording upload of %d kB was paced for %.1f s (the link limits the live stream)",
                     len(data) // 1000, paced)

    async def _yield_to_live(self, size: int) -> None:
        """Wait while the live stream is congested or starting, as long as the recording's lag allows."""
        if self._live_congested is None:
            return
        waited = 0.0
        while True:
            wait = self.yielding.wait(time.monotonic(), congested=self._live_congested(), lag_seconds=self.lag_seconds(),
                                      max_lag_seconds=self._max_lag_seconds(), size=size, starting=self._live_starting(),
                                      sharpening=self._live_sharpening())
            if wait <= 0:
                if waited:
                    log.info("a recording upload waited %.1f s for the live stream", waited)
                return
            waited += wait
            await asyncio.sleep(wait)
