"""Recording and session events: what the peers report to the broker for the audit trail."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_EVENT_DATA_BYTES = 4096
MAX_EVENTS_PER_BATCH = 500
MAX_SEGMENT_BYTES = 32 * 1024 * 1024

HOST_EVENT_KINDS = frozenset({
    "input.applied", "input.refused", "input.text", "chat.sent", "chat.received", "clipboard.sent",
    "clipboard.received", "monitor.selected", "recording.behind", "recording.caught_up", "grant.refused",
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


class PeerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=40, pattern=r"^[a-z_.]+$")
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > MAX_EVENT_DATA_BYTES:
            raise ValueError(f"event data is over {MAX_EVENT_DATA_BYTES} bytes")
        return value


class PeerEvents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[PeerEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


RECORDING_ORIGIN_LIMIT_MS = 2**47
"""Above any Unix time in milliseconds a clock can show (the year 6429)."""


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
