"""What the peers report for the audit trail, each event stored once.

A peer gives every event an id (:data:`protocol.recording.EVENT_ID_PATTERN`).
When it does not get the broker's answer (a timeout, a dropped connection) it
cannot know whether the batch was stored, so it sends the same events again,
with the same ids. The broker stores an id once per session and peer: the ids
already stored are left out and named in the answer, and a unique index on
``(session_id, actor, peer_event_id)`` refuses a second copy even when two
retries of one batch are stored at the same moment (:func:`store_reported`
then runs again and finds the other's rows).

The id also goes into the event's ``data`` (``event_id``), where the chain's hash
covers it; the peer's own time goes there as ``reported_at``, while the event's
``at`` is when the broker received it, which orders the trail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.refusals import Forbidden, Invalid
from broker.sessions.peers import SessionPeer
from broker.sessions.session_usage import SessionQuotas, SessionUsage, charge
from broker.storage.models import AuditEvent
from protocol.recording import HOST_EVENT_KINDS, TECHNICIAN_EVENT_KINDS, PeerEvent, PeerEventsStored
from protocol.signalling import Role

BROKER_DATA_KEYS = ("event_id", "reported_at")
"""What the broker adds to a reported event's data; no kind's schema may name them
(``tests/unit/test_peer_event_ids.py`` checks), and the broker's values win anyway."""


def stored_data(event: PeerEvent) -> dict[str, object]:
    """The data stored for a reported event: the peer's fields, then the peer's id and time."""
    return {**event.data, "event_id": event.id, "reported_at": event.at.isoformat()}


def check_reportable(peer: SessionPeer, events: Sequence[PeerEvent], *, keystroke_logging: bool) -> None:
    """Refuse the whole batch if the peer may not report one of its events."""
    allowed = HOST_EVENT_KINDS if peer.role is Role.host else TECHNICIAN_EVENT_KINDS
    for event in events:
        if event.kind not in allowed:
            raise Invalid("invalid_event", f"a {peer.role.value} does not report {event.kind!r} events")
        if event.kind == "input.text" and not keystroke_logging:
            raise Forbidden("not_allowed", "keystroke logging is off in this deployment")


def store_reported(
    db: Session, peer: SessionPeer, events: Sequence[PeerEvent], quotas: SessionQuotas,
) -> PeerEventsStored:
    """Record the events whose ids this peer has not reported before; name the others.

    What is stored counts against the session's quotas; over one, nothing is
    (:func:`broker.sessions.session_usage.charge` raises, and the caller's transaction rolls back).
    Raises :class:`sqlalchemy.exc.IntegrityError` (at the insert here or at commit) when a
    concurrent request stored one of the same ids first: roll back and call again.
    """
    session_id = peer.session.id
    ids = {event.id for event in events}
    known = set(db.scalars(
        select(AuditEvent.peer_event_id).where(
            AuditEvent.session_id == session_id,
            AuditEvent.actor == peer.actor,
            AuditEvent.peer_event_id.in_(ids),
        )
    ))
    stored: list[str] = []
    already: list[str] = []
    rows: list[tuple[str, dict[str, object], str]] = []
    stored_bytes = 0
    for event in events:
        if event.id in known:
            already.append(event.id)
            continue
        known.add(event.id)  # the same id twice in one batch is stored once too
        data = stored_data(event)
        stored_bytes += len(json.dumps(data))  # as the JSON column stores it
        rows.append((event.kind, data, event.id))
        stored.append(event.id)
    if rows:
        # The whole batch in one INSERT, in the caller's one transaction.
        audit.record_reported(db, rows, actor=peer.actor, session_id=session_id, ticket_id=peer.session.ticket_id)
        charge(db, session_id, SessionUsage(peer_events=len(stored), peer_event_bytes=stored_bytes), quotas)
    return PeerEventsStored(stored=stored, already_stored=already)
