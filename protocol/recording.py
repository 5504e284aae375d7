"""Recording and session events: what the peers report to the broker for the audit trail."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .channel import MAX_CHAT_CHARS, MAX_CLIPBOARD_CHARS, MAX_TEXT_CHARS
from .transfers import SHA256_PATTERN

MAX_EVENTS_PER_BATCH = 500
MAX_EVENT_BATCH_BYTES = 1024 * 1024
"""The most one ``POST .../events`` body may hold; reporters split a longer queue (500 long chat
messages in another script can be several MiB) into batches within it."""
MAX_SEGMENT_BYTES = 32 * 1024 * 1024
MAX_RECORDING_FPS = 30
"""The highest recording frame rate (``DESKHAND_RECORDING_FPS``)."""
MAX_REPEAT_FRAMES = 1000
"""Most frames one repeat upload may name (a one-second segment has ``fps`` of them)."""
MAX_SEGMENT_DURATION_MS = 3_600_000
"""A segment's declared duration is below this."""

EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
"""A peer's id for one of its events, unique among what that peer reports in one session.

A retry sends the same event with the same id, and the broker stores it once.
"""

HOST_EVENT_KINDS = frozenset({
    "input.applied", "input.refused", "input.text", "chat.sent", "chat.received", "clipboard.sent",
    "clipboard.received", "monitor.selected", "recording.behind", "recording.caught_up", "grant.refused",
    "media.interrupted", "media.restored", "media.lost",
})
"""Events a host may report."""
TECHNICIAN_EVENT_KINDS = frozenset({
    "input.sent", "input.text", "chat.sent", "chat.received", "clipboard.sent", "clipboard.received",
    "monitor.selected",
})
"""Events a technician may report."""


class SessionPolicy(BaseModel):
    """How this deployment records sessions; sent to both peers in ``welcome``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recording_required: bool = True
    """Remote control pauses while recording is more than ``recording_max_lag_seconds`` behind."""
    recording_max_lag_seconds: float = 5.0
    recording_fps: float = 2.0
    keystroke_logging: bool = False
    """Peers report every text typed (``input.text``); otherwise only counts per second."""


class _EventData(BaseModel):
    # Strict: a count is a number, not a string that looks like one.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TextData(_EventData):
    """``chat.sent``, ``chat.received``: the message."""

    text: str = Field(min_length=1, max_length=MAX_CHAT_CHARS)


class TypedTextData(_EventData):
    """``input.text`` (only with keystroke logging): what one input message typed."""

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class ClipboardData(_EventData):
    """``clipboard.sent``, ``clipboard.received``: how long the text was and its SHA-256, never the text."""

    chars: int = Field(ge=0, le=MAX_CLIPBOARD_CHARS)
    sha256: str = Field(pattern=SHA256_PATTERN)


class MonitorData(_EventData):
    """``monitor.selected``: the monitor, counted from 1."""

    index: int = Field(ge=1, le=64)


class CountData(_EventData):
    """``input.sent``, ``input.applied``, ``input.refused``: how many in how many seconds."""

    count: int = Field(ge=1, le=1_000_000)
    seconds: float = Field(gt=0, le=3600, allow_inf_nan=False)


class RecordingBehindData(_EventData):
    """``recording.behind``: how far behind, and the recorder's error if it failed."""

    lag_seconds: float = Field(ge=0, le=10_000_000, allow_inf_nan=False)
    error: str | None = Field(default=None, max_length=500)


class ReasonData(_EventData):
    """``grant.refused``: why the host refused the broker's grant."""

    reason: str = Field(max_length=500)


class MediaInterruptedData(_EventData):
    """``media.interrupted``: the technician's side answered no ping for ``silent_seconds`` (the
    recording goes on; the trail marks where the technician stopped seeing it)."""

    silent_seconds: float = Field(ge=0, le=86_400, allow_inf_nan=False)


class MediaRestoredData(_EventData):
    """``media.restored``: the technician's side answers again, ``silent_seconds`` after its last
    answer, after ``attempts`` new connections offered (0: the old one came back by itself)."""

    silent_seconds: float = Field(ge=0, le=86_400, allow_inf_nan=False)
    attempts: int = Field(ge=0, le=100_000)


class MediaLostData(_EventData):
    """``media.lost``: the host gave up reconnecting after ``seconds``, having offered ``attempts``
    new connections (the session and its recording go on without a picture for the technician)."""

    seconds: float = Field(ge=0, le=86_400, allow_inf_nan=False)
    attempts: int = Field(ge=0, le=100_000)


class NoData(_EventData):
    """``recording.caught_up``: nothing more to say."""


EVENT_DATA: dict[str, type[_EventData]] = {
    "chat.sent": TextData, "chat.received": TextData, "input.text": TypedTextData,
    "clipboard.sent": ClipboardData, "clipboard.received": ClipboardData, "monitor.selected": MonitorData,
    "input.sent": CountData, "input.applied": CountData, "input.refused": CountData,
    "recording.behind": RecordingBehindData, "recording.caught_up": NoData, "grant.refused": ReasonData,
    "media.interrupted": MediaInterruptedData, "media.restored": MediaRestoredData, "media.lost": MediaLostData,
}
"""The shape of each reported kind's ``data``."""


class PeerEvent(BaseModel):
    """One event as a peer reports it; the broker records when it received it, and ``at`` beside."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=EVENT_ID_PATTERN, description="the peer's id for this event (a retry repeats it)")
    kind: str = Field(min_length=1, max_length=40, pattern=r"^[a-z_.]+$")
    at: AwareDatetime = Field(description="when it happened, by the peer's clock")
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("at", mode="before")
    @classmethod
    def _time_is_text(cls, value: object) -> object:
        # Not a number of seconds, which pydantic would take as Unix time: the time a peer's clock shows.
        if not isinstance(value, (str, datetime)):
            raise ValueError("must be an ISO 8601 time with its zone, e.g. 2026-01-01T10:00:00+00:00")
        return value

    @model_validator(mode="after")
    def _data_fits_kind(self) -> PeerEvent:
        shape = EVENT_DATA.get(self.kind)
        if shape is None:
            raise ValueError(f"unknown event kind {self.kind!r}")
        try:
            self.data = shape.model_validate(self.data).model_dump()
        except ValidationError as bad:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in bad.errors()[:5]
            )
            raise ValueError(f"{self.kind} data: {problems}") from None
        return self


class PeerEvents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[PeerEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


RECORDING_ORIGIN_LIMIT_MS = 2**47
"""Above any Unix time in milliseconds a clock can show (the year 6429)."""

SegmentRecorderName = Literal["browser"]
"""What recorded a segment when it was not the Deskhand host (``X-Segment-Recorder``): ``browser`` is
the join page (``tech_console/web/js/join/recorder.js``). The host's claim, like the segment itself."""


class PeerEventsStored(BaseModel):
    """The broker's answer to a batch of events: each id is in one of the two lists."""

    stored: list[str]
    """Ids stored now."""
    already_stored: list[str]
    """Ids the broker had stored before (the peer sent them again, e.g. after a timeout)."""


class SegmentRepeatUpload(BaseModel):
    """``PUT .../recording/{index}/repeat``: segment ``index`` repeats stored segment ``source``'s packets.

    The host says what it would say of a whole upload (``sha256``, ``offset_ms``,
    ``duration_ms``, ``origin_ms``, as the ``X-Segment-*`` headers do) and what makes the
    bytes from the source's (:func:`protocol.segment_repeat.repeat_segment`): the frame
    rate and each frame's time. The broker rebuilds the bytes and stores them only if
    they hash to ``sha256``, so the host commits to exact bytes as with a whole upload.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: int = Field(ge=0, lt=10_000_000, description="the stored segment whose packets this one copies")
    sha256: str = Field(pattern=SHA256_PATTERN, description="the SHA-256 of the segment's bytes")
    offset_ms: int = Field(ge=0, lt=2**40)
    duration_ms: int = Field(ge=0, lt=MAX_SEGMENT_DURATION_MS)
    origin_ms: int | None = Field(default=None, ge=0, lt=RECORDING_ORIGIN_LIMIT_MS)
    fps: float = Field(gt=0, le=MAX_RECORDING_FPS, allow_inf_nan=False)
    frames_ms: list[int] = Field(min_length=1, max_length=MAX_REPEAT_FRAMES,
                                 description="each frame's time from the segment's start, in ms, in order")

    @field_validator("frames_ms")
    @classmethod
    def _frames_in_order(cls, frames_ms: list[int]) -> list[int]:
        if any(at < 0 or at >= MAX_SEGMENT_DURATION_MS for at in frames_ms):
            raise ValueError(f"a frame's time is 0 to {MAX_SEGMENT_DURATION_MS - 1} ms")
        if any(later < earlier for earlier, later in pairwise(frames_ms)):
            raise ValueError("frame times must not go back")
        return frames_ms


class RecordingStatus(BaseModel):
    """What the broker holds of a session's recording: where a restarted host continues."""

    segments: int
    """Segments stored."""
    next_index: int
    """The number after the highest stored segment's."""
    end_ms: int
    """Where the last stored segment ends, in ms from ``origin_ms``."""
    origin_ms: int | None = None
    """When the host started recording the session: Unix time in ms by the host's clock, the
    moment every segment's offset counts from. None until a host said (hosts before this field never do)."""
