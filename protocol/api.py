"""REST payloads of the broker's ``/api/v1``, shared by the broker and both clients.

Requests are strict (unknown fields are refused) so that a typo in a client
is an error rather than a silently ignored field.
"""

from __future__ import annotations

import enum
import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)

from .codes import CODE_DIGITS, format_code, normalize_code
from .ice import IceConfig
from .permissions import Permission
from .totp import RecoveryCode, SecondFactor, TotpCode

API_PREFIX = "/api/v1"


def _reject_control_characters(value: str) -> str:
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") and ch not in "\t":
            raise ValueError(f"control or unassigned character U+{ord(ch):04X} is not allowed")
    if value != value.strip():
        raise ValueError("leading or trailing whitespace is not allowed")
    return value


def _reject_control_characters_multiline(value: str) -> str:
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") and ch not in "\t\n\r":
            raise ValueError(f"control or unassigned character U+{ord(ch):04X} is not allowed")
    return value


SingleLine = Annotated[str, AfterValidator(_reject_control_characters)]
"""One line of human text: no control characters, no surrounding whitespace."""

MultiLine = Annotated[str, AfterValidator(_reject_control_characters_multiline)]
"""Free text that may span lines; other control characters are refused."""


class Request(BaseModel):
    """Base of every request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", str_max_length=100_000)


class Response(BaseModel):
    """Base of every response body: tolerant of fields added by newer brokers."""

    model_config = ConfigDict(extra="ignore")


class ErrorBody(Response):
    """Every error the API returns: a stable machine code and a sentence for people."""

    error: str
    message: str
    detail: object | None = None


# --- accounts -------------------------------------------------------------------


class LoginRequest(Request):
    username: SingleLine = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp_code: TotpCode | None = Field(default=None, max_length=16)
    """The authenticator app's 6 digits, for an account with TOTP enabled."""
    recovery_code: RecoveryCode | None = Field(default=None, max_length=32)
    """Instead of ``totp_code``: one of the account's one-time recovery codes."""
    cookie: bool = False
    """For browsers: set the token as an HttpOnly cookie and leave it out of the answer,
    which carries ``csrf_token`` instead (send it as ``X-CSRF-Token`` on every change)."""

    @model_validator(mode="after")
    def _one_second_factor(self) -> "LoginRequest":
        if self.totp_code is not None and self.recovery_code is not None:
            raise ValueError("give either totp_code or recovery_code, not both")
        return self


class UserBrief(Response):
    id: int
    username: str
    display_name: str


class UserInfo(UserBrief):
    is_admin: bool
    """Holds the built-in admin role."""
    roles: list[str] = []
    permissions: list[str] = []
    """Everything the account's roles allow, account and session permissions alike."""


class SignInState(Response):
    """Whether the request's token (or browser cookie) is signed in, and as whom."""

    signed_in: bool
    user: UserInfo | None = None


class LoginResponse(Response):
    access_token: str | None
    """The bearer token; None when it was set as a cookie (``cookie: true``)."""
    csrf_token: str | None = None
    """With ``cookie: true``: the value for ``X-CSRF-Token`` on every request that changes something."""
    token_type: str = "bearer"
    expires_at: datetime
    user: UserInfo
    password_change_required: bool
    totp_enrollment_required: bool = False
    """A role of the account requires TOTP and it has none yet: until enrolment is
    confirmed, the token works only for ``/auth/me``, ``/auth/logout``,
    ``/auth/password`` and ``/auth/totp/*``."""


class PasswordChange(Request):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)
    """Checked against the broker's password policy (its minimum length is configurable)."""


class TotpEnrollment(Response):
    """A new TOTP secret, not in force until confirmed with a code it generates."""

    secret: str
    """Base32, for typing into an authenticator app."""
    provisioning_uri: str
    """``otpauth://totp/...``, for a QR code."""


class TotpConfirm(Request):
    code: TotpCode = Field(max_length=16)


class RecoveryCodes(Response):
    """One-time codes that stand in for a TOTP code; shown only this once."""

    recovery_codes: list[str]


class TotpDisable(Request):
    password: str = Field(min_length=1, max_length=1024)
    code: SecondFactor = Field(max_length=32)
    """A current authenticator code or an unused recovery code."""


# --- tickets --------------------------------------------------------------------


class Priority(str, enum.Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class TicketCreate(Request):
    subject: SingleLine = Field(min_length=1, max_length=200)
    requester_name: SingleLine = Field(min_length=1, max_length=120)
    requester_email: EmailStr = Field(max_length=254)
    priority: Priority = Priority.normal
    description: MultiLine = Field(default="", max_length=20_000)


class SessionState(str, enum.Enum):
    """Where a support session is in its life.

    ``waiting``: a code was issued and no host has joined. ``connected``: a host
    redeemed the code. ``ended``: someone ended it. ``expired``: the code ran
    out before anyone joined.
    """

    waiting = "waiting"
    connected = "connected"
    ended = "ended"
    expired = "expired"


class EndedBy(str, enum.Enum):
    technician = "technician"
    host = "host"
    broker = "broker"


class HostInfo(Response):
    machine_name: str
    os: str
    user_name: str


class SessionOut(Response):
    id: str
    ticket_id: int
    technician: UserBrief
    state: SessionState
    created_at: datetime
    code_expires_at: datetime
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: EndedBy | None = None
    end_reason: str | None = None
    host: HostInfo | None = None
    consent: list[Permission] | None = None
    """What the end user allows now; None until they answered the consent prompt."""
    consent_source: str | None = None
    """How they answered: window, terminal, or flag (an unattended --consent set-up)."""


class TicketSummary(Response):
    id: int
    subject: str
    requester_name: str
    requester_email: str
    priority: Priority
    status: str
    created_at: datetime
    created_by: UserBrief
    session_count: int


class TicketOut(TicketSummary):
    description: str
    sessions: list[SessionOut]


# --- support sessions -----------------------------------------------------------


class SessionCreate(Request):
    ticket_id: int = Field(gt=0, lt=2**62)


class SessionStarted(Response):
    """The answer to starting a session: the only time the code is ever shown."""

    session: SessionOut
    code: str = Field(pattern=rf"^\d{{{CODE_DIGITS}}}$")
    code_display: str


class SessionEnd(Request):
    reason: MultiLine = Field(default="", max_length=500)


class JoinRequest(Request):
    code: str = Field(max_length=64)
    machine_name: SingleLine = Field(min_length=1, max_length=253)
    os: SingleLine = Field(min_length=1, max_length=128)
    user_name: SingleLine = Field(min_length=1, max_length=256)

    @field_validator("code")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalize_code(value)


class JoinResponse(Response):
    session_id: str
    ticket_id: int
    host_token: str
    technician: UserBrief
    ice: IceConfig
    broker_public_key: str
    """Raw Ed25519 public key, base64 (standard alphabet, padded)."""
    signalling_path: str
    """Path of the signalling WebSocket, relative to the broker URL."""


def signalling_path(session_id: str) -> str:
    """The WebSocket path where both peers of ``session_id`` meet."""
    return f"{API_PREFIX}/sessions/{session_id}/signal"


__all__ = [
    "API_PREFIX",
    "EndedBy",
    "ErrorBody",
    "HostInfo",
    "JoinRequest",
    "JoinResponse",
    "LoginRequest",
    "LoginResponse",
    "MultiLine",
    "PasswordChange",
    "Priority",
    "SessionCreate",
    "SessionEnd",
    "SessionOut",
    "SessionStarted",
    "SessionState",
    "SingleLine",
    "TicketCreate",
    "TicketOut",
    "TicketSummary",
    "UserBrief",
    "UserInfo",
    "format_code",
    "signalling_path",
]
