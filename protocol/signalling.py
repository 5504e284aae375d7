"""Signalling messages: what the two peers and the broker say over the WebSocket.

Each message is one JSON object with a ``type``. Peers send ``offer``,
``answer``, ``ice``, ``ice_failed`` and ``end``; the host also sends ``consent``. The broker
relays offer, answer and ice unchanged to the other peer, relays consent to the
technician after recording it, relays ice_failed after auditing it (``session.ice_failed``),
and itself sends ``welcome``, ``grant``, ``ice_config``, ``transfer``, ``file_request``,
``peer_joined``, ``peer_left``, ``session_ended`` and ``error``.

:func:`parse_peer_message` is the single gate every incoming frame passes
(:func:`protocol.frames.parse_frame`: size limit, JSON, schema); a failure is a
:class:`~protocol.frames.MessageError` whose code and message go back to the
sender as an ``error`` message.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .api import HostInfo, MultiLine, UserBrief
from .frames import ErrorCode, MessageError, describe_validation_error, parse_frame
from .grants import SignedGrant
from .ice import CandidateType, IceConfig, candidate_problem
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
    browser = "browser"
    """The join page (``/join``): the user shares a screen, window or tab from a browser, nothing installed."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sent by peers ------------------------------------------------------------------


class Offer(_Message):
    """The host's offer of a new peer connection (each one replaces the last)."""

    type: Literal["offer"] = "offer"
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    attempt: int | None = Field(default=None, ge=1, le=100_000)
    """Counts the host's offers in the session; the answer names it. While the host reconnects it
    offers every few seconds, and offers held up behind a broken link arrive together: only the
    answer to the latest may be applied. None from hosts that do not count."""


class Answer(_Message):
    """The technician's answer to an offer."""

    type: Literal["answer"] = "answer"
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    attempt: int | None = Field(default=None, ge=1, le=100_000)
    """The ``attempt`` of the offer it answers (None when the offer had none)."""


class IceCandidate(_Message):
    """A trickled candidate; ``candidate`` empty or None means end of candidates."""

    type: Literal["ice"] = "ice"
    candidate: str | None = Field(default=None, max_length=1024)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=255)

    @field_validator("candidate")
    @classmethod
    def _well_formed(cls, candidate: str | None) -> str | None:
        # Refused at the broker's gate, so a malformed line never reaches the other peer's ICE stack.
        if candidate is not None and candidate.strip():
            problem = candidate_problem(candidate.strip())
            if problem is not None:
                raise ValueError(problem)
        return candidate


class TurnFailure(_Message):
    """A TURN server a peer could not allocate a relay on, and why (in words a person can act on)."""

    url: str = Field(min_length=1, max_length=512)
    reason: str = Field(min_length=1, max_length=300)


class IceFailed(_Message):
    """The sender's media connection could not be made: no candidate pair worked in time.

    The broker audits it (``session.ice_failed``, once per ``attempt``) and relays it
    to the other peer, so both ends can tell their person what to check.
    """

    type: Literal["ice_failed"] = "ice_failed"
    attempt: int = Field(ge=1, le=100_000)
    """Counts the sender's connection attempts in this session (a reconnect is a new one)."""
    seconds: float = Field(ge=0, le=3600, allow_inf_nan=False)
    """How long the attempt waited before giving up."""
    local_types: list[CandidateType] = Field(default_factory=list, max_length=4)
    """The kinds of candidate the sender gathered (each once)."""
    remote_types: list[CandidateType] = Field(default_factory=list, max_length=4)
    """The kinds of candidate the sender received from the other side (each once)."""
    turn_failures: list[TurnFailure] = Field(default_factory=list, max_length=8)


class End(_Message):
    """The sender ends the whole session (not just its connection)."""

    type: Literal["end"] = "end"
    reason: MultiLine = Field(default="", max_length=500)


class Consent(_Message):
    """What the end user allows now (host to broker, broker to technician)."""

    type: Literal["consent"] = "consent"
    permissions: list[Permission] = Field(max_length=len(Permission))
    source: ConsentSource


PeerMessage = Annotated[Offer | Answer | IceCandidate | IceFailed | End | Consent, Field(discriminator="type")]
"""Any message a peer may send."""
PeerMessageT = Offer | Answer | IceCandidate | IceFailed | End | Consent

RELAYED_TYPES = frozenset({"offer", "answer", "ice", "ice_failed"})

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


class IceRenewed(_Message):
    """Fresh ICE configuration for this peer (new TURN credentials), sent with each renewed grant.

    It replaces the one from ``welcome`` for the next peer connection (a reconnect);
    a connection already made keeps its relay.
    """

    type: Literal["ice_config"] = "ice_config"
    ice: IceConfig


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
    Offer | Answer | IceCandidate | IceFailed | Consent | Welcome | GrantIssued | IceRenewed | TransferUpdate
    | FileRequestUpdate | PeerJoined | PeerLeft | SessionEnded | Error
)
"""Any message a peer may receive from the broker (what :func:`parse_broker_message` returns)."""
BrokerMessage = Annotated[BrokerMessageT, Field(discriminator="type")]
"""The same, validated by its ``type``."""

_peer_adapter: TypeAdapter[PeerMessageT] = TypeAdapter(PeerMessage)
_broker_adapter: TypeAdapter[BrokerMessageT] = TypeAdapter(BrokerMessage)

_PEER_TYPES = ("offer", "answer", "ice", "ice_failed", "end", "consent")

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
