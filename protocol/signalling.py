"""Signalling messages: what the two peers and the broker say over the WebSocket.

Each message is one JSON object with a ``type``. Peers send ``offer``,
``answer``, ``ice`` and ``end``; the host also sends ``consent``. The broker
relays offer, answer and ice unchanged to the other peer, relays consent to the
technician after recording it, and itself sends ``welcome``, ``grant``, ``transfer``, ``file_request``,
``peer_joined``, ``peer_left``, ``session_ended`` and ``error``.

:func:`parse_peer_message` is the single gate every incoming frame passes
(:func:`protocol.frames.parse_frame`: size limit, JSON, schema); a failure is a
:class:`~protocol.frames.MessageError` whose code and message go back to the
sender as an ``error`` message.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .api import HostInfo, MultiLine, UserBrief
from .frames import ErrorCode, MessageError, describe_validation_error, parse_frame
from .grants import SignedGrant
from .ice import IceConfig
from .permissions import Permission
from .recording import SessionPolicy
from .transfers import FileRequestOut, TransferOut

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
"""Largest signalling frame the broker accepts by default (an SDP is ~2-8 KiB)."""

MAX_SDP_CHARS = 60_000


class Role(str, enum.Enum):
    """Which end of a session a signalling connection speaks for."""

    technician = "technician"
    host = "host"

    @property
    def other(self) -> Role:
        return Role.host if self is Role.technician else Role.technician


class ConsentSource(str, enum.Enum):
    """How the end user gave (or changed) consent."""

    window = "window"
    terminal = "terminal"
    flag = "flag"
    """``deskhand-host --consent``: unattended set-ups; audited as such."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sent by peers ------------------------------------------------------------------


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


class Consent(_Message):
    """What the end user allows now (host to broker, broker to technician)."""

    type: Literal["consent"] = "consent"
    permissions: list[Permission] = Field(max_length=len(Permission))
    source: ConsentSource


PeerMessage = Annotated[Offer | Answer | IceCandidate | End | Consent, Field(discriminator="type")]
"""Any message a peer may send."""
PeerMessageT = Offer | Answer | IceCandidate | End | Consent

RELAYED_TYPES = frozenset({"offer", "answer", "ice"})

# --- sent by the broker -------------------------------------------------------------


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
    policy: SessionPolicy = SessionPolicy()
    """How the session is recorded and what is logged."""


class GrantIssued(_Message):
    """The broker's current signed grant for the session; replaces any earlier one."""

    type: Literal["grant"] = "grant"
    grant: SignedGrant


class TransferUpdate(_Message):
    """A file transfer of the session was offered or changed state (to both peers)."""

    type: Literal["transfer"] = "transfer"
    transfer: TransferOut


class FileRequestUpdate(_Message):
    """The technician asked for a file, or the host answered (to both peers)."""

    type: Literal["file_request"] = "file_request"
    request: FileRequestOut


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


class Error(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


BrokerMessageT = (
    Offer | Answer | IceCandidate | Consent | Welcome | GrantIssued | TransferUpdate | FileRequestUpdate | PeerJoined
    | PeerLeft | SessionEnded | Error
)
"""Any message a peer may receive from the broker (what :func:`parse_broker_message` returns)."""
BrokerMessage = Annotated[BrokerMessageT, Field(discriminator="type")]
"""The same, validated by its ``type``."""

_peer_adapter: TypeAdapter[PeerMessageT] = TypeAdapter(PeerMessage)
_broker_adapter: TypeAdapter[BrokerMessageT] = TypeAdapter(BrokerMessage)

_PEER_TYPES = ("offer", "answer", "ice", "end", "consent")

SignalError = MessageError
"""Signalling's name for :class:`protocol.frames.MessageError`."""


def error_message(error: MessageError) -> Error:
    """The ``error`` message that tells a sender why its frame was refused."""
    return Error(code=error.code, message=error.message)


def parse_peer_message(frame: str | bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> PeerMessageT:
    """Validate one frame received from a peer, or raise :class:`MessageError`."""
    return parse_frame(frame, _peer_adapter, _PEER_TYPES, max_bytes)


def parse_broker_message(frame: str | bytes) -> BaseModel:
    """Validate one frame received from the broker (used by both clients)."""
    try:
        return _broker_adapter.validate_json(frame)
    except ValidationError as exc:
        raise MessageError(ErrorCode.invalid_message, describe_validation_error(exc)) from None


def encode(message: BaseModel) -> str:
    """Serialise a message for the wire (compact JSON)."""
    return message.model_dump_json()
