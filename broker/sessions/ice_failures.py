"""A peer's ``ice_failed`` in the audit trail: ``session.ice_failed``, once per connection attempt.

A peer numbers its connection attempts within a session and may say the same
one failed again (after reconnecting its signalling, say); the trail keeps the
first report of each attempt, with the kinds of candidate that were tried and
the TURN servers that refused a relay, so an auditor can tell "no relay
configured" from "the relay refused us" from "a firewall in between".

A peer picks its own attempt numbers, so a hostile one could make each report
new. The trail keeps at most :data:`MAX_AUDITED_ATTEMPTS` per peer and session
(far more than a real session fails: each failure follows a connection
attempt), then records once that further reports were left out
(``session.ice_failures_capped``); they are still relayed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.storage.models import AuditEvent
from protocol.signalling import IceFailed

KIND = "session.ice_failed"
CAPPED_KIND = "session.ice_failures_capped"
MAX_AUDITED_ATTEMPTS = 100
"""Failed attempts of one peer in one session that the trail keeps."""


class Verdict(enum.Enum):
    """What to do with one report."""

    record = "record"
    """A new attempt, under the cap: audit it."""
    cap = "cap"
    """A new attempt over the cap, the first: audit that reports are left out from here on."""
    skip = "skip"
    """In the trail already, or over the cap and said so."""


@dataclass(frozen=True)
class TrailedFailures:
    """What the trail holds of one peer's failures in one session."""

    attempts: frozenset[int] = field(default_factory=frozenset)
    capped: bool = False

    def judge(self, attempt: int) -> Verdict:
        """The verdict on a report of ``attempt``."""
        if attempt in self.attempts:
            return Verdict.skip
        if len(self.attempts) < MAX_AUDITED_ATTEMPTS:
            return Verdict.record
        return Verdict.skip if self.capped else Verdict.cap

    def after(self, attempt: int, verdict: Verdict) -> TrailedFailures:
        """What the trail holds once ``verdict`` on ``attempt`` is carried out."""
        if verdict is Verdict.record:
            return TrailedFailures(self.attempts | {attempt}, self.capped)
        if verdict is Verdict.cap:
            return TrailedFailures(self.attempts, True)
        return self


def ice_failed_data(message: IceFailed) -> dict[str, object]:
    """What the trail keeps of a peer's report (its fields, checked by the signalling gate)."""
    return {
        "attempt": message.attempt,
        "seconds": message.seconds,
        "local_types": list(message.local_types),
        "remote_types": list(message.remote_types),
        "turn_failures": [failure.model_dump() for failure in message.turn_failures],
    }


def trailed_failures(db: Session, session_id: str, actor: str) -> TrailedFailures:
    """The failures of this peer of this session that the trail already holds."""
    rows = db.execute(select(AuditEvent.kind, AuditEvent.data).where(
        AuditEvent.session_id == session_id, AuditEvent.actor == actor, AuditEvent.kind.in_((KIND, CAPPED_KIND)),
    ))
    attempts: set[int] = set()
    capped = False
    for kind, data in rows:
        if kind == CAPPED_KIND:
            capped = True
        elif isinstance(data, dict) and isinstance(attempt := data.get("attempt"), int):
            attempts.add(attempt)
    return TrailedFailures(frozenset(attempts), capped)


def record_ice_failed(db: Session, message: IceFailed, verdict: Verdict, *, session_id: str, actor: str,
                      source: str | None) -> None:
    """Carry out ``verdict`` on ``message``: one ``session.ice_failed``, one ``session.ice_failures_capped``, or nothing."""
    if verdict is Verdict.record:
        audit.record_data(db, KIND, ice_failed_data(message), actor=actor, source=source, session_id=session_id)
    elif verdict is Verdict.cap:
        audit.record_data(db, CAPPED_KIND, {"cap": MAX_AUDITED_ATTEMPTS, "attempt": message.attempt},
                          actor=actor, source=source, session_id=session_id)
