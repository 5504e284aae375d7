"""Recording what happened, for the audit trail.

Every action of a technician, a host or the broker itself that matters to an
auditor goes through :func:`record`, inside the same database transaction as
the change it describes, so the trail and the data cannot disagree. Events that are also webhook
events are handed to the outbox (:mod:`broker.integrations.outbox`), which queues their
deliveries in that same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.orm import Session

from broker.clock import utcnow
from broker.integrations import outbox
from broker.storage.models import AuditEvent
from protocol.webhooks import EVENT_OF_AUDIT_KIND

BROKER = "broker"
ANONYMOUS = "anonymous"


class _Named(Protocol):
    @property
    def username(self) -> str: ...


USER_ACTOR_PREFIX = "user:"
HOST_ACTOR_PREFIX = "host:"


def user_actor(user: _Named) -> str:
    """The actor name of a signed-in person (an ORM user or its API brief)."""
    return f"{USER_ACTOR_PREFIX}{user.username}"




def host_actor(session_id: str) -> str:
    return f"{HOST_ACTOR_PREFIX}{session_id}"


def record(
    db: Session, kind: str, *, actor: str, source: str | None = None, session_id: str | None = None,
    ticket_id: int | None = None, **data: object,
) -> AuditEvent:
    """Append one event. ``data`` must never hold a secret (passwords, codes, tokens).

    Data whose keys come from outside (a peer's report) goes through :func:`record_data`.
    """
    return record_data(db, kind, data, actor=actor, source=source, session_id=session_id, ticket_id=ticket_id)


def record_data(
    db: Session,
    kind: str,
    data: Mapping[str, object],
    *,
    actor: str,
    source: str | None = None,
    session_id: str | None = None,
    ticket_id: int | None = None,
    peer_event_id: str | None = None,
) -> AuditEvent:
    """Append one event whose ``data`` is one mapping, never spread into keyword arguments.

    For data a peer reported: whatever its keys, none can reach who did it, from
    where, in which session or when; those are the broker's to say.
    ``peer_event_id``: the id the reporting peer gave the event (unique per session
    and actor in the database; see :mod:`broker.audit.peer_events`).
    """
    event = AuditEvent(
        at=utcnow(),
        kind=kind,
        actor=actor,
        source=source,
        session_id=session_id,
        ticket_id=ticket_id,
        data=dict(data),
        peer_event_id=peer_event_id,
    )
    db.add(event)
    outbox.note_event(db, event)
    return event


def record_reported(
    db: Session, reported: Sequence[tuple[str, Mapping[str, object], str]], *,
    actor: str, session_id: str, ticket_id: int | None,
) -> None:
    """Append the events one peer reported, each ``(kind, data, peer_event_id)``, in one statement.

    What :func:`record_data` stores for each, written as one multi-row INSERT rather than
    an ORM object per event (a batch of 50 is several times cheaper so). For kinds that
    are no webhook event only (no peer reports one): the outbox is not told of these.
    """
    webhook_kinds = {kind for kind, _data, _id in reported if kind in EVENT_OF_AUDIT_KIND}
    if webhook_kinds:
        raise ValueError(f"webhook events go through record_data, one by one: {sorted(webhook_kinds)}")
    if not reported:
        return
    at = utcnow()
    db.execute(insert(AuditEvent), [
        {"at": at, "kind": kind, "actor": actor, "session_id": session_id, "ticket_id": ticket_id,
         "data": dict(data), "peer_event_id": peer_event_id}
        for kind, data, peer_event_id in reported
    ])


def record_refusal(db: Session, kind: str, **fields: object) -> AuditEvent:
    """Append an event about a refused request and commit it at once.

    The request is about to fail, which rolls its transaction back; a refusal
    (a wrong password, a token used on the wrong session) must stay on record.
    """
    event = record(db, kind, **fields)  # type: ignore[arg-type]  # fields carries actor= and the rest, as record() takes them
    db.commit()
    return event
