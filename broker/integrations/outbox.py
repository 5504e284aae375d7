"""The webhook outbox: every audit event that is a webhook event becomes deliveries, in its transaction.

:func:`broker.audit.events.record` hands each event to :func:`note_event`; when the
transaction commits, one :class:`WebhookDelivery` per enabled endpoint
subscribed to that event is written in the same commit. So an event is sent if
and only if the change it describes was committed, and the ticket snapshot in
the payload is the ticket as that transaction left it (a status set after the
event was recorded, in the same transaction, is in the snapshot).

The delivery worker (:mod:`broker.integrations.webhooks`) then sends what is due and books
each attempt here (:func:`due_deliveries`, :func:`book_attempt`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from broker.audit.trail import iso
from broker.clock import utcnow
from broker.keys import unwrap
from broker.storage.db import changed_rows
from broker.storage.models import AuditEvent, Ticket, WebhookDelivery, WebhookEndpoint
from protocol.webhooks import EVENT_OF_AUDIT_KIND, DeliveryState, retry_delay

PENDING_KEY = "deskhand.webhook_events"
"""``Session.info`` key of the webhook events recorded in the current transaction."""

MAX_DELAY_SECONDS = 3600.0
"""No retry waits longer than an hour, whatever the base and the attempt."""

RETRY_JITTER = 0.2
"""Retries come up to 20 % early, so endpoints that failed together are not retried together."""

ERROR_CHARS = 500
"""``WebhookDelivery.last_error`` length."""


def note_event(db: Session, audit_event: AuditEvent) -> None:
    """Remember ``audit_event`` for the outbox if it is a webhook event (called by ``audit.record``)."""
    if audit_event.kind in EVENT_OF_AUDIT_KIND:
        db.info.setdefault(PENDING_KEY, []).append(audit_event)


@event.listens_for(Session, "before_commit")
def _write_deliveries(db: Session) -> None:
    """Turn the transaction's webhook events into deliveries; flushed by this same commit."""
    noted: list[AuditEvent] = db.info.pop(PENDING_KEY, [])
    if not noted:
        return
    endpoints = db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))).all()
    if not endpoints:
        return
    now = utcnow()
    for audit_event in noted:
        name = EVENT_OF_AUDIT_KIND[audit_event.kind]
        wanted = [e for e in endpoints if not e.events or name in e.events]
        if not wanted:
            continue
        body = event_body(db, name, audit_event)
        for endpoint in wanted:
            enqueue(db, endpoint, name, body, now)


@event.listens_for(Session, "after_rollback")
def _forget_deliveries(db: Session) -> None:
    # A rolled-back change was never made: nothing to tell anyone.
    db.info.pop(PENDING_KEY, None)


def enqueue(db: Session, endpoint: WebhookEndpoint, name: str, body: dict[str, object], now: datetime) -> WebhookDelivery:
    """One delivery of ``body`` (without its ``id``, which is the delivery's) to ``endpoint``, due now."""
    delivery_id = str(uuid.uuid4())
    delivery = WebhookDelivery(
        id=delivery_id, endpoint_id=endpoint.id, event=name, payload={"id": delivery_id, **body},
        state=DeliveryState.pending.value, attempts=0, next_attempt_at=now, created_at=now,
    )
    db.add(delivery)
    return delivery


def event_body(db: Session, name: str, audit_event: AuditEvent) -> dict[str, object]:
    """The payload of a webhook event (all but ``id``): what happened, and the ticket it concerns."""
    ticket = db.get(Ticket, audit_event.ticket_id) if audit_event.ticket_id is not None else None
    return {
        "event": name,
        "at": iso(audit_event.at),
        "actor": audit_event.actor,
        "ticket": ticket_snapshot(ticket) if ticket is not None else None,
        "session_id": audit_event.session_id,
        "data": audit_event.data or {},
    }


def ticket_snapshot(ticket: Ticket) -> dict[str, object]:
    """The ticket as an outside system sees it in a webhook: no SLA internals, no people's ids."""
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "category": ticket.category,
        "requester_name": ticket.requester_name,
        "requester_email": ticket.requester_email,
        "assignee": ticket.assignee.username if ticket.assignee is not None else None,
        "assignee_team": ticket.assignee_team.name if ticket.assignee_team is not None else None,
        "external_system": ticket.external_system,
        "external_key": ticket.external_key,
    }


# --- the worker's bookkeeping -----------------------------------------------------------


def endpoint_secret_context(name: str) -> str:
    """What a webhook endpoint's wrapped secret is bound to (see ``broker.keys.wrap``)."""
    return f"webhook:{name}"


@dataclass(frozen=True)
class Outgoing:
    """A due delivery, ready to send: everything the worker needs outside the database."""

    id: str
    endpoint_id: int
    event: str
    url: str
    secret: bytes
    body: bytes


def due_deliveries(db: Session, master_key: bytes, now: datetime, limit: int) -> tuple[list[Outgoing], list[Attempt]]:
    """Pending deliveries of enabled endpoints whose time has come, oldest event first.

    Also returns, as failed attempts, those that cannot be signed because their
    endpoint's secret does not unwrap (the master key was replaced): they run out
    their attempts and go dead where an administrator sees them, instead of
    stopping the whole queue.
    """
    rows = db.execute(
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.state == DeliveryState.pending.value,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.enabled.is_(True),
        )
        # Oldest event first: the sender keeps this order per endpoint.
        .order_by(WebhookDelivery.created_at, WebhookDelivery.payload["at"].as_string())
        .limit(limit)
    ).all()
    secrets: dict[int, bytes | None] = {}
    out, unsendable = [], []
    for delivery, endpoint in rows:
        if endpoint.id not in secrets:
            try:
                secrets[endpoint.id] = unwrap(master_key, endpoint.secret_wrapped, endpoint_secret_context(endpoint.name))
            except (InvalidTag, ValueError):
                secrets[endpoint.id] = None
        secret = secrets[endpoint.id]
        if secret is None:
            unsendable.append(Attempt(delivery.id, None, UNWRAP_FAILED))
            continue
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        out.append(Outgoing(delivery.id, endpoint.id, delivery.event, endpoint.url, secret, body))
    return out, unsendable


UNWRAP_FAILED = "the endpoint's secret does not unwrap with this broker's master key: remove and add the webhook again"


@dataclass(frozen=True)
class Attempt:
    """How one attempt went: a status code, or an error before any answer."""

    delivery_id: str
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def book_attempt(
    db: Session, attempt: Attempt, now: datetime, *, base: float, max_attempts: int, rand: float | None = None
) -> WebhookDelivery | None:
    """Record an attempt: delivered, or retried later by the backoff schedule, or dead after the last.

    Returns the delivery if this attempt made it dead (the caller audits that), else None.
    A delivery replayed or removed while it was in flight is left as it is now.
    """
    delivery = db.get(WebhookDelivery, attempt.delivery_id)
    if delivery is None or delivery.state != DeliveryState.pending.value:
        return None
    delivery.attempts += 1
    delivery.last_status = attempt.status
    if attempt.ok:
        delivery.state = DeliveryState.delivered.value
        delivery.delivered_at = now
        delivery.last_error = None
        return None
    delivery.last_error = (attempt.error or f"HTTP {attempt.status}")[:ERROR_CHARS]
    if delivery.attempts >= max_attempts:
        delivery.state = DeliveryState.dead.value
        return delivery
    delay = retry_delay(delivery.attempts, base=base, cap=MAX_DELAY_SECONDS, jitter=RETRY_JITTER, rand=rand)
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return None


DELIVERED_KEPT = timedelta(days=30)
"""How long delivered deliveries stay listed; the audit trail keeps the events themselves for good."""


def prune_delivered(db: Session, now: datetime) -> int:
    """Forget deliveries delivered longer than :data:`DELIVERED_KEPT` ago; returns how many."""
    return changed_rows(db, delete(WebhookDelivery).where(
        WebhookDelivery.state == DeliveryState.delivered.value,
        WebhookDelivery.delivered_at < now - DELIVERED_KEPT,
    ))
