"""Support sessions: issuing a code, a host redeeming it, ending, expiring.

Every state change happens with a conditional UPDATE on the current state, so
two racing requests (two hosts with the same code, an end racing an expiry)
cannot both win.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broker.accounts.tokens import HOST_TOKEN_PREFIX, new_token
from broker.audit import events as audit
from broker.audit.reports import session_note
from broker.clock import utcnow
from broker.helpdesk.tickets import add_comment, mark_first_response
from broker.refusals import Conflict, Gone, NotFound, Refusal
from broker.sessions.codes import CodeRecord, Verdict, hash_code, issue_code, judge_redemption
from broker.storage.db import changed_rows
from broker.storage.models import SupportSession, Ticket, User
from protocol.api import EndedBy, JoinRequest, SessionState
from protocol.helpdesk import CommentKind, Visibility
from protocol.permissions import Permission, ordered
from protocol.signalling import ConsentSource

_ISSUE_ATTEMPTS = 20


class CodeRejected(Exception):
    """A redemption failed; ``verdict`` says why, :meth:`refusal` tells the host."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.value)
        self.verdict = verdict

    def refusal(self) -> Refusal:
        """What the host is told: a kind and a sentence for each verdict."""
        kind, code, message = _REJECTIONS[self.verdict]
        return kind(code, message)


_REJECTIONS: dict[Verdict, tuple[type[Refusal], str, str]] = {
    Verdict.unknown: (NotFound, "code_unknown", "no session has this code: check the digits with your technician"),
    Verdict.expired: (Gone, "code_expired", "this code has expired: ask your technician for a new one"),
    Verdict.used: (Conflict, "code_used", "this code was already used: ask your technician for a new one"),
    Verdict.cancelled: (Gone, "code_cancelled", "the technician cancelled this code: ask for a new one"),
}


class SessionOver(Conflict):
    """The session already ended or expired (``409 session_over``)."""

    def __init__(self, session: SupportSession) -> None:
        super().__init__("session_over", f"the session is already {session.state}")
        self.session = session


def get_session(db: Session, session_id: str) -> SupportSession | None:
    """The session ``session_id``, its technician loaded (see :func:`_with_technician`)."""
    return _with_technician(db.scalars(select(SupportSession).where(SupportSession.id == session_id)).one_or_none())


def _with_technician(session: SupportSession | None) -> SupportSession | None:
    # Loaded now, for use after the unit of work ends; as a plain many-to-one load, so a
    # technician this unit of work already holds (their token was just looked up) costs no query.
    if session is not None:
        session.technician  # noqa: B018
    return session


def start_session(
    db: Session,
    technician: User,
    ticket: Ticket,
    *,
    code_key: bytes,
    code_ttl: timedelta,
    source: str | None,
) -> tuple[SupportSession, str]:
    """Create a waiting session on ``ticket`` and return it with its fresh code."""
    now = utcnow()
    for _ in range(_ISSUE_ATTEMPTS):
        code = issue_code()
        code_hash = hash_code(code_key, code)
        clash = db.scalar(
            select(SupportSession.id).where(
                SupportSession.code_hash == code_hash,
                SupportSession.state == SessionState.waiting.value,
                SupportSession.code_expires_at > now,
            )
        )
        if clash is None:
            break
    else:  # pragma: no cover - needs ~10^8 live codes
        raise RuntimeError("could not find a free support code; too many live sessions")
    session = SupportSession(
        id=str(uuid.uuid4()),
        ticket=ticket,
        technician=technician,
        state=SessionState.waiting.value,
        code_hash=code_hash,
        code_expires_at=now + code_ttl,
        created_at=now,
    )
    db.add(session)
    db.flush()
    audit.record(
        db, "session.created", actor=audit.user_actor(technician), source=source,
        session_id=session.id, ticket_id=ticket.id,
    )
    audit.record(
        db, "code.issued", actor=audit.user_actor(technician), source=source,
        session_id=session.id, ticket_id=ticket.id,
        expires_at=session.code_expires_at.isoformat(),
    )
    return session, code


def redeem_code(
    db: Session, body: JoinRequest, *, code_key: bytes, source: str | None
) -> tuple[SupportSession, str]:
    """Burn the code in ``body`` and attach the host; return the session and host token.

    Raises :class:`CodeRejected`. The caller audits and rate-limits failures.
    """
    now = utcnow()
    code_hash = hash_code(code_key, body.code)
    rows = db.execute(
        select(
            SupportSession.id,
            SupportSession.state,
            SupportSession.code_expires_at,
            SupportSession.connected_at,
        ).where(SupportSession.code_hash == code_hash)
    ).all()
    records = [CodeRecord(r.id, r.state, r.code_expires_at, r.connected_at is not None) for r in rows]
    verdict, session_id = judge_redemption(records, now)
    if verdict is not Verdict.redeemable:
        raise CodeRejected(verdict)
    host_token, host_token_hash = new_token(HOST_TOKEN_PREFIX)
    won = changed_rows(
        db,
        update(SupportSession)
        .where(
            SupportSession.id == session_id,
            SupportSession.state == SessionState.waiting.value,
            SupportSession.code_expires_at > now,
        )
        .values(
            state=SessionState.connected.value,
            connected_at=now,
            host_token_hash=host_token_hash,
            host_machine_name=body.machine_name,
            host_os=body.os,
            host_user_name=body.user_name,
            host_address=source,
        )
    )
    if won != 1:
        # Someone else redeemed it between our read and our write.
        raise CodeRejected(Verdict.used)
    # Read after the UPDATE and not held before it by this unit of work: as the UPDATE left it.
    assert session_id is not None  # judge_redemption names the session whenever it is redeemable
    session = get_session(db, session_id)
    assert session is not None
    audit.record(
        db, "code.redeemed", actor=audit.host_actor(session.id), source=source,
        session_id=session.id, ticket_id=session.ticket_id,
        machine_name=body.machine_name, os=body.os, user_name=body.user_name,
    )
    connected(db, session, now)
    return session, host_token


def connected(db: Session, session: SupportSession, at: datetime) -> None:
    """A host is on the line: for the ticket, the technician has responded."""
    mark_first_response(db, session.ticket, at, actor=audit.user_actor(session.technician))


def host_session(db: Session, host_token_hash: str) -> SupportSession | None:
    """The session a host token belongs to, its technician loaded."""
    return _with_technician(
        db.scalars(select(SupportSession).where(SupportSession.host_token_hash == host_token_hash)).one_or_none()
    )


def end_session(
    db: Session,
    session: SupportSession,
    *,
    ended_by: EndedBy,
    actor: str,
    reason: str,
    source: str | None,
) -> SupportSession:
    """End a waiting or connected session. Raises :class:`SessionOver` if it already is."""
    now = utcnow()
    won = changed_rows(
        db,
        update(SupportSession)
        .where(
            SupportSession.id == session.id,
            SupportSession.state.in_([SessionState.waiting.value, SessionState.connected.value]),
        )
        .values(
            state=SessionState.ended.value,
            ended_at=now,
            ended_by=ended_by.value,
            end_reason=reason,
        )
    )
    if won != 1:
        db.refresh(session)  # as whoever ended it first left it
        raise SessionOver(session)
    # Won: the UPDATE's synchronisation (SQLAlchemy's "auto") already set the values on ``session``.
    audit.record(
        db, "session.ended", actor=actor, source=source, session_id=session.id,
        ticket_id=session.ticket_id, ended_by=ended_by.value, reason=reason,
    )
    if session.connected_at is not None:
        add_comment(
            db, session.ticket, kind=CommentKind.session_report, visibility=Visibility.internal,
            body=session_note(db, session), actor=audit.BROKER, session_id=session.id,
        )
    return session


@dataclass(frozen=True)
class Expired:
    session_id: str
    ticket_id: int


def expire_overdue(db: Session, now: datetime | None = None) -> list[Expired]:
    """Mark every waiting session whose code ran out as expired; return them."""
    now = now or utcnow()
    overdue = db.execute(
        select(SupportSession.id, SupportSession.ticket_id).where(
            SupportSession.state == SessionState.waiting.value,
            SupportSession.code_expires_at <= now,
        )
    ).all()
    expired = []
    for row in overdue:
        won = changed_rows(
            db,
            update(SupportSession)
            .where(SupportSession.id == row.id, SupportSession.state == SessionState.waiting.value)
            .values(
                state=SessionState.expired.value,
                ended_at=now,
                ended_by=EndedBy.broker.value,
                end_reason="the support code expired before a host joined",
            )
        )
        if won == 1:
            audit.record(
                db, "session.expired", actor=audit.BROKER, session_id=row.id, ticket_id=row.ticket_id
            )
            expired.append(Expired(row.id, row.ticket_id))
    return expired


def record_consent(
    db: Session,
    session_id: str,
    permissions: list[Permission],
    source: ConsentSource,
    *,
    source_address: str | None,
) -> bool:
    """Store the end user's consent on a live session and audit it; False when the session is over."""
    names = [p.value for p in ordered(permissions)]
    won = changed_rows(
        db,
        update(SupportSession)
        .where(
            SupportSession.id == session_id,
            SupportSession.state == SessionState.connected.value,
        )
        .values(consent=names, consent_source=source.value, consent_at=utcnow())
    )
    if won != 1:
        return False
    ticket_id = db.scalar(select(SupportSession.ticket_id).where(SupportSession.id == session_id))
    audit.record(
        db, "consent.changed", actor=audit.host_actor(session_id), source=source_address,
        session_id=session_id, ticket_id=ticket_id, permissions=names, given_by=source.value,
    )
    if source is ConsentSource.flag:
        # Unattended consent is a policy question for auditors: make it easy to find.
        audit.record(
            db, "consent.flag_used", actor=audit.host_actor(session_id), source=source_address,
            session_id=session_id, ticket_id=ticket_id, permissions=names,
        )
    return True
