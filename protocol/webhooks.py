"""Signed webhooks, both ways: the signing scheme, the retry schedule, the event names, the payloads.

Pure (no I/O): the broker signs what it sends to external helpdesks and checks
what they send it with the same functions, and a receiver written in Python can
verify the broker's requests with them too.

The scheme: ``X-Deskhand-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``
with ``X-Deskhand-Timestamp: <unix seconds>``. The timestamp is inside the MAC,
so a captured request cannot be re-sent later than the tolerance window with a
fresh timestamp; within the window :class:`SeenSignatures` refuses a second copy.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import random
import secrets
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, EmailStr, Field, field_validator

from .admin import NAME_PATTERN
from .api import ExternalKey, ExternalSystem, MultiLine, Priority, Request, Response, SingleLine
from .helpdesk import TicketStatus

EVENT_HEADER = "X-Deskhand-Event"
DELIVERY_HEADER = "X-Deskhand-Delivery"
TIMESTAMP_HEADER = "X-Deskhand-Timestamp"
SIGNATURE_HEADER = "X-Deskhand-Signature"
SIGNATURE_PREFIX = "sha256="

SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 256

# --- event names ------------------------------------------------------------------------

EVENT_OF_AUDIT_KIND: dict[str, str] = {
    "ticket.created": "ticket.created",
    "ticket.updated": "ticket.updated",
    "ticket.status_changed": "ticket.status_changed",
    "ticket.assigned": "ticket.assigned",
    "ticket.commented": "ticket.commented",
    "ticket.sla_breached": "ticket.sla_breached",
    "session.created": "session.created",
    # The host redeeming the code is what connects a session; outsiders should not
    # need to know about codes to follow a session's life.
    "code.redeemed": "session.connected",
    "session.ended": "session.ended",
    "session.expired": "session.expired",
    "survey.submitted": "survey.submitted",
    "request.created": "request.created",
    "request.picked": "request.picked",
}
"""The audit events that are also webhook events, and the webhook event each becomes.

Webhook events are audit events (``broker.audit.events.record``), so an outside system sees
exactly what the trail records, under the same name except where noted.
"""

WEBHOOK_EVENTS: tuple[str, ...] = tuple(dict.fromkeys(EVENT_OF_AUDIT_KIND.values()))
"""Every event a webhook endpoint can subscribe to."""

TEST_EVENT = "webhook.test"
"""Sent only by ``POST /webhooks/{name}/test``, whatever the endpoint subscribes to."""


# --- signing ----------------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Deskhand-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    """The two headers that authenticate ``body``: timestamp and signature."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


class Refusal(str, enum.Enum):
    """Why a signed request was not believed (for the audit trail, never for the caller)."""

    missing = "missing"
    """No timestamp or no signature header."""
    malformed = "malformed"
    """A timestamp that is not an integer, or a signature that is not ``sha256=<64 hex>``."""
    stale = "stale"
    """The timestamp is further from the receiver's clock than the tolerance."""
    mismatch = "mismatch"
    """The signature is not the body's under this secret (wrong secret, altered body)."""
    unknown_source = "unknown_source"
    """No enabled source of that name (decided by the caller, listed here for one vocabulary)."""
    replayed = "replayed"
    """The same signed request was seen already within the tolerance window."""


def verify(
    secret: bytes,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float,
) -> Refusal | None:
    """Check a request's headers against ``body``; None when it is authentic and fresh.

    ``tolerance``: how many seconds the timestamp may be off ``now`` either way
    (a clock running ahead counts as much as a replay from the past). The
    signature is compared in constant time.
    """
    if not timestamp or not signature:
        return Refusal.missing
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return Refusal.malformed
    digest = signature.removeprefix(SIGNATURE_PREFIX)
    if digest == signature or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        return Refusal.malformed
    if abs(now - int(timestamp)) > tolerance:
        return Refusal.stale
    if not hmac.compare_digest(sign(secret, int(timestamp), body), signature):
        return Refusal.mismatch
    return None


def generate_secret() -> str:
    """A new shared secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


# --- retries ----------------------------------------------------------------------------


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.0,
    rand: float | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    ``base * 2**(attempt-1)``, at most ``cap``. With ``jitter`` (0 to 1) the delay is
    shortened by up to that fraction, at random (``rand`` in [0, 1) fixes the draw for
    tests), so endpoints that all failed together are not all retried together;
    the delay never exceeds the schedule.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, not {attempt}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter is a fraction between 0 and 1, not {jitter}")
    delay = float(min(cap, base * 2 ** min(attempt - 1, 62)))
    draw = random.random() if rand is None else rand
    return delay * (1 - jitter * draw)


# --- payloads of the admin API ------------------------------------------------------------


RESERVED_NAMES = frozenset({"deliveries"})
"""Webhook names that would hide a route under ``/webhooks/``."""


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL has no host name")
    if parts.username is not None or parts.password is not None:
        # The URL is stored and shown in clear; credentials belong in the signing secret.
        raise ValueError("the URL must not carry a user name or password; the signature authenticates the broker")
    if parts.fragment:
        raise ValueError("the URL must not have a #fragment")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError(f"the URL's port is not valid: {exc}") from None
    return value


WebUrl = Annotated[SingleLine, Field(min_length=8, max_length=2048), AfterValidator(_web_url)]
"""An ``http(s)://`` URL without credentials or fragment."""

Secret = Annotated[str, Field(min_length=SECRET_MIN_LENGTH, max_length=SECRET_MAX_LENGTH)]


def _known_events(value: list[str]) -> list[str]:
    unknown = [e for e in value if e not in WEBHOOK_EVENTS]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; events are: {', '.join(WEBHOOK_EVENTS)}")
    return list(dict.fromkeys(value))


EventList = Annotated[list[str], Field(max_length=len(WEBHOOK_EVENTS) * 2), AfterValidator(_known_events)]
"""Event names to send; empty means all of them."""


class WebhookCreate(Request):
    """A new endpoint; the URL is fixed by an administrator, never by a request's data."""

    name: str = Field(pattern=NAME_PATTERN)
    url: WebUrl
    secret: Secret | None = None
    """Left out: the broker generates one and shows it once."""
    events: EventList = Field(default_factory=list)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved; pick another name")
        return value


class WebhookUpdate(Request):
    url: WebUrl | None = None
    events: EventList | None = None
    enabled: bool | None = None


class WebhookOut(Response):
    """An endpoint as shown to administrators: never its secret."""

    id: int
    name: str
    url: str
    events: list[str]
    """Empty: every event."""
    enabled: bool
    created_at: datetime
    pending: int = 0
    dead: int = 0


class WebhookCreated(Response):
    webhook: WebhookOut
    secret: str | None
    """The generated secret, shown this once (None when the request gave one)."""


class DeliveryState(str, enum.Enum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"


class DeliveryOut(Response):
    id: str
    webhook: str
    event: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, object]


class InboundSourceCreate(Request):
    system: ExternalSystem
    """The name tickets carry as ``external.system`` and the path of ``POST /inbound/{system}``."""
    secret: Secret | None = None
    """Left out: the broker generates one and shows it once."""
    enabled: bool = True


class InboundSourceUpdate(Request):
    enabled: bool


class InboundSourceOut(Response):
    id: int
    system: str
    enabled: bool
    created_at: datetime


class InboundSourceCreated(Response):
    source: InboundSourceOut
    secret: str | None
    """The generated secret, shown this once (None when the request gave one)."""


class InboundTicket(Request):
    """What an external helpdesk sends to ``POST /inbound/{system}``.

    The ticket is found by ``external_key`` among that system's tickets: the first
    request for a key creates it (``subject`` and ``requester_name`` are then
    required), later ones change the fields they carry. A ``comment`` becomes a
    public reply on the ticket.
    """

    external_key: ExternalKey
    subject: SingleLine | None = Field(default=None, min_length=1, max_length=200)
    description: MultiLine | None = Field(default=None, max_length=20_000)
    requester_name: SingleLine | None = Field(default=None, min_length=1, max_length=120)
    requester_email: EmailStr | None = Field(default=None, max_length=254)
    priority: Priority | None = None
    status: TicketStatus | None = None
    category: SingleLine | None = Field(default=None, max_length=64)
    comment: MultiLine | None = Field(default=None, min_length=1, max_length=20_000)


class InboundResult(Response):
    ticket_id: int
    created: bool
    external_system: str
    external_key: str
    changed: list[str]
    """The ticket fields this request changed (``status``, ``comment`` among them)."""


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_OF_AUDIT_KIND",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_EVENTS",
    "DeliveryOut",
    "DeliveryState",
    "InboundResult",
    "InboundSourceCreate",
    "InboundSourceCreated",
    "InboundSourceOut",
    "InboundSourceUpdate",
    "InboundTicket",
    "Refusal",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookOut",
    "WebhookUpdate",
    "generate_secret",
    "retry_delay",
    "sign",
    "signed_headers",
    "verify",
]
