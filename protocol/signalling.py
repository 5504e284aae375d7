"""Signalling messages: what the two peers and the broker say over the WebSocket.

Each message is one JSON object with a ``type``. Peers send ``offer``,
``answer``, ``ice`` and ``end``; the broker relays the first three unchanged to
the other peer and answers with ``welcome``, ``peer_joined``, ``peer_left``,
``session_ended`` and ``error``.

:func:`parse_peer_message` is the single gate every incoming frame passes
through: it enforces the size limit, decodes JSON and validates against the
models, and turns any failure into a :class:`SignalError` whose ``code`` and
``message`` go back to the sender as an ``error`` message.
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .api import HostInfo, MultiLine, UserBrief
from .ice import IceConfig

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
"""Largest signalling frame the broker accepts by default (an SDP is ~2-8 KiB)."""

MAX_SDP_CHARS = 60_000


class Role(str, enum.Enum):
    """Which end of a session a signalling connection speaks for."""

    technician = "technician"
    host = "host"

    @property
    def other(self) -> "Role":
        return Role.host if self is Role.technician else Role.technician


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sent by peers, relayed by the broker -----------------------------------------


class Offer(_Message):
    type: Literal["offer"] = "offer"
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)


class Answer(_Message):
    type: Literal["answer"] = "answer"
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)


class IceCandidate(_Message):
    """A trickled candidate; ``candidate`` empty or None means end of candidates."""

    type: Literal["ice"] = "ice"
    candidate: str | None = Field(default=None, max_length=1024)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=255)


class End(_Message):
    """The sender ends the whole session (not just its connection)."""

    type: Literal["end"] = "end"
    reason: MultiLine = Field(default="", max_length=500)


PeerMessage = Annotated[Union[Offer, Answer, IceCandidate, End], Field(discriminator="type")]
"""Any message a peer may send."""

RELAYED_TYPES = frozenset({"offer", "answer", "ice"})

# --- sent by the broker ----------------------------------------------------------


class PeerInfo(_Message):
    """Who is at the other end: a technician (``user``) or a host (``host``)."""

    role: Role
    user: UserBrief | None = None
    host: HostInfo | None = None


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    session_id: str
    role: Role
    peer: PeerInfo | None = None
    """The other peer, when it is already connected."""
    ice: IceConfig
    """How this peer gathers ICE candidates for the session."""


class PeerJoined(_Message):
    type: Literal["peer_joined"] = "peer_joined"
    peer: PeerInfo


class PeerLeft(_Message):
    type: Literal["peer_left"] = "peer_left"
    role: Role


class SessionEnded(_Message):
    type: Literal["session_ended"] = "session_ended"
    ended_by: str
    reason: str = ""


class ErrorCode(str, enum.Enum):
    too_large = "too_large"
    invalid_json = "invalid_json"
    invalid_message = "invalid_message"
    unknown_type = "unknown_type"
    peer_absent = "peer_absent"
    session_over = "session_over"


class Error(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


BrokerMessage = Annotated[
    Union[Offer, Answer, IceCandidate, Welcome, PeerJoined, PeerLeft, SessionEnded, Error],
    Field(discriminator="type"),
]
"""Any message a peer may receive from the broker."""

_peer_adapter: TypeAdapter[Offer | Answer | IceCandidate | End] = TypeAdapter(PeerMessage)
_broker_adapter: TypeAdapter[object] = TypeAdapter(BrokerMessage)

_PEER_TYPES = ("offer", "answer", "ice", "end")


class SignalError(Exception):
    """A frame that cannot be accepted; carries what to tell the sender."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_message(self) -> Error:
        return Error(code=self.code, message=self.message)


def parse_peer_message(
    frame: str | bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Offer | Answer | IceCandidate | End:
    """Validate one frame received from a peer, or raise :class:`SignalError`."""
    # surrogatepass: a str holding a lone surrogate is measured, then refused as JSON,
    # instead of escaping as UnicodeEncodeError.
    size = len(frame.encode("utf-8", "surrogatepass")) if isinstance(frame, str) else len(frame)
    if size > max_bytes:
        raise SignalError(
            ErrorCode.too_large,
            f"message of {size} bytes is over the limit of {max_bytes} bytes",
        )
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignalError(ErrorCode.invalid_json, f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SignalError(ErrorCode.invalid_message, "message must be a JSON object")
    kind = data.get("type")
    if kind not in _PEER_TYPES:
        raise SignalError(
            ErrorCode.unknown_type,
            f"unknown message type {str(kind)[:40]!r}; expected one of {', '.join(_PEER_TYPES)}",
        )
    try:
        return _peer_adapter.validate_python(data)
    except ValidationError as exc:
        raise SignalError(ErrorCode.invalid_message, describe_validation_error(exc)) from None


def parse_broker_message(frame: str | bytes) -> BaseModel:
    """Validate one frame received from the broker (used by both clients)."""
    try:
        return _broker_adapter.validate_json(frame)  # type: ignore[return-value]
    except ValidationError as exc:
        raise SignalError(ErrorCode.invalid_message, describe_validation_error(exc)) from None


def encode(message: BaseModel) -> str:
    """Serialise a message for the wire (compact JSON, no nulls dropped)."""
    return message.model_dump_json()


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's report into one readable sentence per problem."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"] if p not in _PEER_TYPES) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
