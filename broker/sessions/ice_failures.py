"""A peer's ``ice_failed`` in the audit trail: ``session.ice_failed``, once per connection attempt.

A peer numbers its connection attempts within a session and may say the same
one failed again (after reconnecting its signalling, say); the trail keeps the
first report of each attempt, with the kinds of candidate that were tried and
the TURN servers that refused a relay, so an auditor can tell "no relay
configured" from "the relay refused us" from "a firewall in between".
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.storage.models import AuditEvent
from protocol.signalling import IceFailed

KIND = "session.ice_failed"


def ice_failed_data(message: IceFailed) -> dict[str, object]:
    """What the trail keeps of a peer's report (its fields, checked by the signalling gate)."""
    return {
        "attempt": message.attempt,
        "seconds": message.seconds,
        "local_types": list(message.local_types),
        "remote_types": list(message.remote_types),
        "turn_failures": [failure.model_dump() for failure in message.turn_failures],
    }


def audited_attempts(db: Session, session_id: str, actor: str) -> set[int]:
    """The attempts of this peer of this session whose failure the trail already holds."""
    rows = db.scalars(select(AuditEvent.data).where(
        AuditEvent.session_id == session_id, AuditEvent.actor == actor, AuditEvent.kind == KIND,
    ))
    attempts = (data.get("attempt") for data in rows if isinstance(data, dict))
    return {attempt for attempt in attempts if isinstance(attempt, int)}


def record_ice_failed(db: Session, message: IceFailed, *, session_id: str, actor: str, source: str | None) -> None:
    """Append one ``session.ice_failed`` event for ``message``."""
    audit.record_data(db, KIND, ice_failed_data(message), actor=actor, source=source, session_id=session_id)
