"""Database tables (SQLAlchemy 2 declarative).

Schema changes go through an Alembic revision in ``broker/storage/migrations/versions``;
``tests/integration/test_migrations.py`` checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware UTC datetimes; SQLite would otherwise hand back naive ones."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """Set: the account cannot sign in and its tokens stop working."""
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    """Wrong passwords (or TOTP codes) since the last successful sign-in."""
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    """Base32 TOTP secret; set at enrolment, in force once ``totp_enabled_at`` is set."""
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """The time step of the last accepted TOTP code: a code is good once."""

    # Joined: a user comes with roles and teams in the one query that loads it (three queries as
    # "selectin", and a user is loaded several times per session). A query that selects User itself
    # must call .unique() on its result.
    roles: Mapped[list[Role]] = relationship(secondary="user_roles", lazy="joined", order_by="Role.id")
    teams: Mapped[list[Team]] = relationship(secondary="team_members", lazy="joined", order_by="Team.id",
                                             back_populates="members")

    @property
    def permissions(self) -> frozenset[str]:
        """Everything the account's roles allow (nothing while it is disabled)."""
        if self.disabled_at is not None:
            return frozenset()
        return frozenset(name for role in self.roles for name in role.permissions)

    @property
    def is_admin(self) -> bool:
        return any(role.name == "admin" for role in self.roles)


class Role(Base):
    """A named set of permissions (``ROLE_PERMISSION_NAMES``); built-in ones cannot be deleted."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    builtin: Mapped[bool] = mapped_column(default=False)
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    require_totp: Mapped[bool] = mapped_column(default=False)
    """Members must enrol in TOTP before they can do anything else."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class Team(Base):
    """Technicians grouped together; the team's session policy narrows what its members may do."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    policy: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    """``{"denied": [session permissions], "recording_required": bool}``; see ``broker.policies``."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    members: Mapped[list[User]] = relationship(secondary="team_members", back_populates="teams")
    """Loaded when read (or with ``selectinload``), never with each member's teams: loading a user
    would otherwise load every colleague in each of their teams, and each colleague's roles."""


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class GrantChanges(Base):
    """One row counting the writes that can change a live session's grant (``broker.sessions.grant_changes``).

    Bumped in the transaction of each such write, by every process that writes; the broker's
    grant watcher reads this one row to learn that something changed.
    """

    __tablename__ = "grant_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class RecoveryCode(Base):
    """A one-time TOTP recovery code; only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class AccessToken(Base):
    """A login token; only its SHA-256 is stored."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    user: Mapped[User] = relationship()


class Ticket(Base):
    """A request for help: the home of every support session, note, reply and survey about it."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ux_tickets_external", "external_system", "external_key", unique=True),
        Index("ix_tickets_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    requester_name: Mapped[str] = mapped_column(String(120))
    requester_email: Mapped[str] = mapped_column(String(254))
    """Empty when the requester gave none (a request from the host client)."""
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    """``protocol.helpdesk.TicketStatus``; changes only through ``broker.helpdesk.tickets``."""
    category: Mapped[str] = mapped_column(String(64), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    """None when nobody signed in opened it (a host request, an inbound webhook)."""
    created_via: Mapped[str] = mapped_column(String(16), default="console")
    """``console``, ``host`` (a request without a code) or ``inbound`` (an external helpdesk)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None, index=True)
    assignee_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), default=None, index=True)
    external_system: Mapped[str | None] = mapped_column(String(32), default=None)
    external_key: Mapped[str | None] = mapped_column(String(128), default=None)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """The last time it was resolved (or closed without being resolved first)."""
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    sla: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    """Both SLA timers (``broker.helpdesk.sla.SlaState.to_json``); the three columns below are derived from it."""
    sla_breached: Mapped[bool] = mapped_column(default=False, index=True)
    """A timer was already known to be over its target at the last change (met late, or paused late)."""
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    """When the earliest running timer breaches; None while no timer runs."""
    sla_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    """When the earliest running timer becomes near-breach."""

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    assignee_team: Mapped[Team | None] = relationship()
    sessions: Mapped[list[SupportSession]] = relationship(
        back_populates="ticket", order_by="SupportSession.created_at"
    )
    comments: Mapped[list[TicketComment]] = relationship(
        back_populates="ticket", order_by="TicketComment.id"
    )
    surveys: Mapped[list[SessionSurvey]] = relationship(order_by="SessionSurvey.submitted_at")


class TicketComment(Base):
    """An internal note or a public reply on a ticket (also session reports and survey answers)."""

    __tablename__ = "ticket_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))
    """``protocol.helpdesk.CommentKind``: note, reply, session_report, survey, inbound."""
    visibility: Mapped[str] = mapped_column(String(16))
    """``internal`` (technicians only) or ``public`` (meant for the requester)."""
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    author: Mapped[str] = mapped_column(String(128))
    """The actor name, as in the audit trail (``user:alice``, ``host:<session>``, ``inbound:jira``)."""
    session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    body: Mapped[str] = mapped_column(Text)

    ticket: Mapped[Ticket] = relationship(back_populates="comments")
    author_user: Mapped[User | None] = relationship()


class SlaTarget(Base):
    """How long, per priority, the first response and the resolution may take."""

    __tablename__ = "sla_targets"

    priority: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    business_hours: Mapped[bool] = mapped_column(default=False)
    """Count only business hours (``DESKHAND_BUSINESS_HOURS``) instead of every minute."""


class SupportSession(Base):
    """One remote support session on a ticket, from code issue to its end."""

    __tablename__ = "support_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    technician_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    code_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    host_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    host_machine_name: Mapped[str | None] = mapped_column(String(253), default=None)
    host_os: Mapped[str | None] = mapped_column(String(128), default=None)
    host_user_name: Mapped[str | None] = mapped_column(String(256), default=None)
    host_address: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ended_by: Mapped[str | None] = mapped_column(String(16), default=None)
    end_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    consent: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    """The end user's current consent (permission names), None until they answered."""
    consent_source: Mapped[str | None] = mapped_column(String(16), default=None)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    recording_origin_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """When the host started recording: Unix time in ms by the host's clock, which the offsets of
    the session's segments count from. Set by the first segment that declares it; None for
    recordings made before hosts declared it."""
    recording_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bytes of recording stored for the session (as recorded), against ``DESKHAND_SESSION_MAX_RECORDING_BYTES``."""
    recording_segments: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Recording segments stored, against ``DESKHAND_SESSION_MAX_SEGMENTS``."""
    peer_events: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Events the peers reported and the broker stored, against ``DESKHAND_SESSION_MAX_EVENTS``."""
    peer_event_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bytes of their data as stored (JSON), against ``DESKHAND_SESSION_MAX_EVENT_BYTES``."""

    ticket: Mapped[Ticket] = relationship(back_populates="sessions")
    technician: Mapped[User] = relationship()


class SessionSurvey(Base):
    """The end user's answer to the one-question survey at the end of a session."""

    __tablename__ = "session_surveys"

    session_id: Mapped[str] = mapped_column(ForeignKey("support_sessions.id"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    """1 (very unhappy) to 5 (very happy)."""
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HelpRequest(Base):
    """An end user asking for help from the host client, waiting in the queue without a code.

    The host holds ``token``; when a technician picks the request up, the new
    session's host token is that same secret, so the waiting host joins
    without anything read aloud (and still answers the consent prompt).
    """

    __tablename__ = "help_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    """``waiting``, ``picked``, ``cancelled`` (by the user) or ``expired`` (the host stopped asking)."""
    machine_name: Mapped[str] = mapped_column(String(253))
    os: Mapped[str] = mapped_column(String(128))
    user_name: Mapped[str] = mapped_column(String(256))
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The host's last poll; a request not polled for a while expires."""
    picked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    picked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("support_sessions.id"), default=None)

    ticket: Mapped[Ticket] = relationship()
    picked_by: Mapped[User | None] = relationship()


class WebhookEndpoint(Base):
    """An outside URL that receives signed ticket and session events."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_wrapped: Mapped[str] = mapped_column(String(400))
    """The HMAC secret, AES-GCM wrapped by the broker's master key (base64)."""
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Event kinds to send; empty means every webhook event."""
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One event on its way to one endpoint: retried with backoff, then dead-lettered."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    """``pending``, ``delivered`` or ``dead``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class InboundSource(Base):
    """An external helpdesk allowed to create and update tickets through the inbound webhook."""

    __tablename__ = "inbound_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system: Mapped[str] = mapped_column(String(32), unique=True)
    """The name used in the endpoint path and in tickets' ``external_system`` (``jira``, ``zendesk``)."""
    secret_wrapped: Mapped[str] = mapped_column(String(400))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """Something that happened, for the audit trail.

    Written in the transaction of the change it describes; sealed into its
    chain (``chain``, ``chain_seq``, ``prev_hash``, ``hash``) moments later by
    :func:`broker.audit.trail.seal_pending`, in the order events were committed.
    An event a peer reported keeps the peer's id for it in ``peer_event_id``
    (and in ``data``, where the hash covers it): a peer's retry is stored once.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_session_id", "session_id"),
        Index("ux_audit_events_chain_seq", "chain", "chain_seq", unique=True),
        Index("ux_audit_events_peer_event", "session_id", "actor", "peer_event_id", unique=True),
        # The sealer's pending events (broker/audit/trail.py): only the few rows not sealed yet.
        Index("ix_audit_events_unsealed", "id", sqlite_where=text("hash IS NULL"), postgresql_where=text("hash IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(64), default=None)
    session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    ticket_id: Mapped[int | None] = mapped_column(Integer, default=None)
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    chain: Mapped[str | None] = mapped_column(String(40), default=None)
    chain_seq: Mapped[int | None] = mapped_column(Integer, default=None)
    prev_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    hash: Mapped[str | None] = mapped_column(String(64), default=None)
    peer_event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    """The reporting peer's id for the event (None for the broker's own events)."""


class AuditHead(Base):
    """The broker's signature over a chain's newest event: one row per chain, moved as events are sealed."""

    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str] = mapped_column(String(120))


class Transfer(Base):
    """A file moving through the broker between the two peers of a session."""

    __tablename__ = "transfers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("support_sessions.id"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    chunk_size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    """Indexed for the sweep, which looks for the few transfers still running (``broker.sessions.transfers.sweep_transfers``)."""
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    broker_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    saved_as: Mapped[str | None] = mapped_column(String(1024), default=None)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    created_by: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    chunks: Mapped[list[TransferChunk]] = relationship(
        order_by="TransferChunk.index", cascade="all, delete-orphan"
    )


class TransferChunk(Base):
    """A chunk the broker holds, with the SHA-256 the sender declared and the broker checked."""

    __tablename__ = "transfer_chunks"

    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)


class FileRequest(Base):
    """The technician asking the host for a file."""

    __tablename__ = "file_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("support_sessions.id"), index=True)
    path: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    transfer_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionKey(Base):
    """A session's recording data key, wrapped (AES-GCM) by the broker's master key."""

    __tablename__ = "session_keys"

    session_id: Mapped[str] = mapped_column(ForeignKey("support_sessions.id"), primary_key=True)
    wrapped: Mapped[str] = mapped_column(String(200))
    """base64 of nonce || ciphertext+tag."""


class RecordingSegment(Base):
    """One stored recording segment (its bytes are encrypted where they are kept: ``broker.storage.blobs``)."""

    __tablename__ = "recording_segments"

    session_id: Mapped[str] = mapped_column(ForeignKey("support_sessions.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset_ms: Mapped[int] = mapped_column(BigInteger)
    """Start of the segment, in ms since the host started recording the session."""
    duration_ms: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
