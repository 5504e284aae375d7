"""What the peers of one session may store: recording and reported events, each with a quota.

A host token is a credential anyone holding the end user's computer has; without
quotas it could fill the broker's disk with recording segments and the audit
trail with events. Each session counts what it stored (four counters on its
row, ``support_sessions``), and :func:`charge` adds to them in the transaction
that stores, then refuses the whole store with ``413 quota_exceeded`` if a quota
is overrun, which rolls the addition back with it. Adding first and judging
after makes two concurrent stores of one session see each other: the first
write locks the session's row until its transaction ends.

:meth:`SessionQuotas.overrun` is the judgement, pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from broker.refusals import TooLarge
from broker.storage.models import SupportSession


@dataclass(frozen=True)
class SessionUsage:
    """What a session's peers stored so far (or are about to add)."""

    recording_bytes: int = 0
    recording_segments: int = 0
    peer_events: int = 0
    peer_event_bytes: int = 0


@dataclass(frozen=True)
class SessionQuotas:
    """The most one session may store (``DESKHAND_SESSION_MAX_*``)."""

    recording_bytes: int
    recording_segments: int
    peer_events: int
    peer_event_bytes: int

    def overrun(self, usage: SessionUsage) -> str | None:
        """Which quota ``usage`` is over, in words for the peer; None when within all."""
        limits = (
            (usage.recording_bytes, self.recording_bytes, "bytes of recording"),
            (usage.recording_segments, self.recording_segments, "recording segments"),
            (usage.peer_events, self.peer_events, "reported events"),
            (usage.peer_event_bytes, self.peer_event_bytes, "bytes of reported events"),
        )
        for used, most, what in limits:
            if used > most:
                return f"this session may store at most {most} {what}; nothing more is stored"
        return None


_COLUMNS = (
    SupportSession.recording_bytes, SupportSession.recording_segments,
    SupportSession.peer_events, SupportSession.peer_event_bytes,
)


def charge(db: Session, session_id: str, adding: SessionUsage, quotas: SessionQuotas) -> None:
    """Count ``adding`` against the session's quotas in the caller's transaction.

    Raises :class:`~broker.refusals.TooLarge` when a quota would be overrun: the caller's
    transaction (the counters' addition with it) must then roll back.
    """
    # One statement that adds and reads back (RETURNING: SQLite 3.35+, PostgreSQL); no in-memory
    # object to keep in step (synchronize_session off), since nothing here holds the session's row.
    row = db.execute(
        update(SupportSession).where(SupportSession.id == session_id).values({
            column: column + getattr(adding, column.key) for column in _COLUMNS
        }).returning(*_COLUMNS).execution_options(synchronize_session=False)
    ).one()
    problem = quotas.overrun(SessionUsage(*row))
    if problem is not None:
        raise TooLarge("quota_exceeded", problem)
