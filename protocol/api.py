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
from .helpdesk import CommentKind, TicketOrigin, TicketStatus, Visibility
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
    def _one_second_factor(self) -> LoginRequest:
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
    password_change_required: bool = False
    """The account's password was set by someone else: until it is changed, the token works only
    for ``/auth/me``, ``/auth/logout`` and ``/auth/password`` (``403 password_change_required``)."""


class LoginResponse(Response):
    access_token: str | None
    """The bearer token; None when it was set as a cookie (``cookie: true``)."""
    csrf_token: str | None = None
    """With ``cookie: true``: the value for ``X-CSRF-Token`` on every request that changes something."""
    token_type: str = "bearer"
    expires_at: datetime
    user: UserInfo
    password_change_required: bool
    """As in :class:`SignInState`."""
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


Category = Annotated[SingleLine, Field(max_length=64)]
"""A ticket's category: free text, one line (empty: none)."""

ExternalSystem = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]
"""The name of an external helpdesk (``jira``, ``zendesk``, ``servicenow``): lower case."""

ExternalKey = Annotated[SingleLine, Field(min_length=1, max_length=128)]
"""A ticket's key in that helpdesk (``INC0012345``, ``HELP-42``)."""


class ExternalRef(BaseModel):
    """Where the same ticket lives in another helpdesk."""

    model_config = ConfigDict(extra="forbid")

    system: ExternalSystem
    key: ExternalKey


class TicketCreate(Request):
    subject: SingleLine = Field(min_length=1, max_length=200)
    requester_name: SingleLine = Field(min_length=1, max_length=120)
    requester_email: EmailStr = Field(max_length=254)
    priority: Priority = Priority.normal
    description: MultiLine = Field(default="", max_length=20_000)
    category: Category = ""
    assignee: str | None = Field(default=None, max_length=64)
    """Username of the technician to assign (needs ``tickets.assign`` unless it is yourself)."""
    team: str | None = Field(default=None, max_length=64)
    """Name of the team to assign (needs ``tickets.assign``)."""
    external: ExternalRef | None = None


class TicketUpdate(Request):
    """A change to a ticket: only the fields present change; ``null`` clears assignee, team or external."""

    subject: SingleLine | None = Field(default=None, min_length=1, max_length=200)
    description: MultiLine | None = Field(default=None, max_length=20_000)
    requester_name: SingleLine | None = Field(default=None, min_length=1, max_length=120)
    requester_email: EmailStr | None = Field(default=None, max_length=254)
    priority: Priority | None = None
    category: Category | None = None
    status: TicketStatus | None = None
    assignee: str | None = Field(default=None, max_length=64)
    team: str | None = Field(default=None, max_length=64)
    external: ExternalRef | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> TicketUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one field")
        for name in ("subject", "description", "requester_name", "requester_email", "priority", "category", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class CommentCreate(Request):
    body: MultiLine = Field(min_length=1, max_length=20_000)
    visibility: Visibility = Visibility.internal
    """``internal``: a note for technicians; ``public``: a reply to the requester (a first response)."""

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the comment is blank")
        return value


class SlaTargetIn(Request):
    priority: Priority
    first_response_minutes: int = Field(ge=1, le=366 * 24 * 60)
    resolution_minutes: int = Field(ge=1, le=366 * 24 * 60)
    business_hours: bool = False

    @model_validator(mode="after")
    def _order(self) -> SlaTargetIn:
        if self.resolution_minutes < self.first_response_minutes:
            raise ValueError("resolution_minutes must not be shorter than first_response_minutes")
        return self


class SlaTargetsUpdate(Request):
    targets: list[SlaTargetIn] = Field(min_length=1, max_length=len(Priority))

    @field_validator("targets")
    @classmethod
    def _unique(cls, value: list[SlaTargetIn]) -> list[SlaTargetIn]:
        seen = [t.priority for t in value]
        if len(set(seen)) != len(seen):
            raise ValueError("each priority may appear once")
        return value


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


class PlaybackStarted(Response):
    """A playback of a session's recording, on the record as ``recording.played``."""

    playback_id: str
    """Present it as ``?playback=`` on the recording's byte-range GETs; yours alone, for this session."""
    url: str
    """The recording's address for this playback (a ``<video src>``), from the broker's root."""
    bytes: int
    """Size of the recording this playback serves (as of its start)."""
    segments: int
    idle_seconds: int
    """The playback lapses after this long without a request; then start another."""


class TeamBrief(Response):
    id: int
    name: str


class Assignees(Response):
    """Whom a ticket can be assigned to: enabled accounts that work tickets, and every team."""

    people: list[UserBrief]
    teams: list[TeamBrief]


class SlaTimerOut(Response):
    state: str
    """running, at_risk, breached, paused or met."""
    target_s: int
    spent_s: float
    """Seconds of the target's calendar spent so far (business seconds when business_hours)."""
    due_at: datetime | None
    """When it breaches if it keeps running; null while paused or met."""
    met_at: datetime | None


class SlaOut(Response):
    business_hours: bool
    first_response: SlaTimerOut
    resolution: SlaTimerOut
    breached: bool
    at_risk: bool


class SlaTargetOut(Response):
    priority: Priority
    first_response_minutes: int
    resolution_minutes: int
    business_hours: bool


class SlaTargetsOut(Response):
    targets: list[SlaTargetOut]
    business_hours: str
    """The working hours business-hours targets count in, e.g. "mon-fri 09:00-17:00"."""
    business_timezone: str
    warn_percent: int


class TicketSummary(Response):
    id: int
    subject: str
    requester_name: str
    requester_email: str
    """Empty when the requester gave none."""
    priority: Priority
    status: TicketStatus
    category: str
    created_at: datetime
    updated_at: datetime | None
    created_by: UserBrief | None
    """None when the ticket came from a host request or an external helpdesk."""
    created_via: TicketOrigin
    assignee: UserBrief | None
    team: TeamBrief | None
    external: ExternalRef | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    reopen_count: int
    sla: SlaOut | None
    """None for tickets opened before SLA targets existed."""
    session_count: int


class CommentOut(Response):
    id: int
    at: datetime
    kind: CommentKind
    visibility: Visibility
    author: str
    """The actor, as in the audit trail: ``user:alice``, ``host:<session>``, ``broker``, ``inbound:jira``."""
    author_user: UserBrief | None
    session_id: str | None
    body: str


class SurveyOut(Response):
    session_id: str
    rating: int
    comment: str
    submitted_at: datetime


class TicketOut(TicketSummary):
    description: str
    sessions: list[SessionOut]
    comments: list[CommentOut]
    surveys: list[SurveyOut]
    allowed_statuses: list[TicketStatus]
    """The statuses this ticket may move to now."""


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


class HostDescription(Request):
    """What a host tells the broker about itself (shown to the technician)."""

    machine_name: SingleLine = Field(min_length=1, max_length=253)
    os: SingleLine = Field(min_length=1, max_length=128)
    user_name: SingleLine = Field(min_length=1, max_length=256)


class JoinRequest(HostDescription):
    code: str = Field(max_length=64)

    @field_validator("code")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalize_code(value)


class SessionJoin(Response):
    """Everything a host needs to enter its session, but the host token (which it may hold already)."""

    session_id: str
    ticket_id: int
    technician: UserBrief
    ice: IceConfig
    broker_public_key: str
    """Raw Ed25519 public key, base64 (standard alphabet, padded)."""
    signalling_path: str
    """Path of the signalling WebSocket, relative to the broker URL."""

    def with_token(self, host_token: str) -> JoinResponse:
        """The full join answer, with the host token the host holds."""
        return JoinResponse(**self.model_dump(), host_token=host_token)


class JoinResponse(SessionJoin):
    host_token: str


def signalling_path(session_id: str) -> str:
    """The WebSocket path where both peers of ``session_id`` meet."""
    return f"{API_PREFIX}/sessions/{session_id}/signal"


# --- host downloads ---------------------------------------------------------------


class HostDownloadOut(Response):
    """A single-file host build the broker offers (``GET /downloads``)."""

    platform: str
    """``<system>-<machine>``: ``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``."""
    file_name: str
    size: int
    sha256: str
    url: str
    """Where to download it, on this broker: ``/api/v1/downloads/<platform>``."""


class HostDownloadsOut(Response):
    downloads: list[HostDownloadOut]


__all__ = [
    "API_PREFIX",
    "Assignees",
    "Category",
    "CommentCreate",
    "CommentOut",
    "EndedBy",
    "ErrorBody",
    "ExternalRef",
    "HostDescription",
    "HostDownloadOut",
    "HostDownloadsOut",
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
    "SessionJoin",
    "SessionOut",
    "SessionStarted",
    "SessionState",
    "SingleLine",
    "SlaOut",
    "SlaTargetIn",
    "SlaTargetOut",
    "SlaTargetsOut",
    "SlaTargetsUpdate",
    "SlaTimerOut",
    "SurveyOut",
    "TeamBrief",
    "TicketCreate",
    "TicketOut",
    "TicketSummary",
    "TicketUpdate",
    "UserBrief",
    "UserInfo",
    "format_code",
    "signalling_path",
]
