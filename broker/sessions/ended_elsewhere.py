"""Sessions another broker ended: their peers connected to this one are told and closed.

Several brokers may share one database. A session ended on broker A (its technician's end,
the host's, the code running out, an admin's) closes the room A holds at once; its peers
connected to broker B learn it from the database: about once a second
(:data:`ROOM_WATCH_SECONDS`) B reads the state of the sessions it holds rooms for, in
batches, and closes those that are over with the ending the database recorded. A broker
alone pays one small query a second while it holds rooms, and finds nothing: its own ends
closed their rooms already.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.storage.models import SupportSession
from protocol.api import EndedBy, SessionState
from protocol.signalling import SessionEnded

ROOM_WATCH_SECONDS = 1.0
"""How often a broker looks for sessions ended elsewhere among those it holds rooms for."""

BATCH = 500
"""Sessions per ``IN (...)`` query."""

OVER = (SessionState.ended.value, SessionState.expired.value)


@dataclass(frozen=True)
class EndedSession:
    """A session the database says is over, and how it ended."""

    session_id: str
    ended_by: str | None
    reason: str | None

    def farewell(self) -> SessionEnded:
        """What its peers are told: the same words as the broker that ended it sent its own."""
        return SessionEnded(ended_by=self.ended_by or EndedBy.broker.value, reason=self.reason or "")


def ended_among(db: Session, session_ids: Iterable[str]) -> list[EndedSession]:
    """Those of ``session_ids`` that are over (ended or expired)."""
    ids: Sequence[str] = sorted(set(session_ids))
    over: list[EndedSession] = []
    for start in range(0, len(ids), BATCH):
        rows = db.execute(
            select(SupportSession.id, SupportSession.ended_by, SupportSession.end_reason)
            .where(SupportSession.id.in_(ids[start:start + BATCH]), SupportSession.state.in_(OVER))
        ).all()
        over += [EndedSession(row.id, row.ended_by, row.end_reason) for row in rows]
    return over
