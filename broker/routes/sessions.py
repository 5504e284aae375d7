"""Support sessions, from the technician's side."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy.orm import Session

from broker.accounts.access import SessionStarter
from broker.audit import events as audit
from broker.deps import DB, CurrentUser, SessionId, Source, State
from broker.refusals import not_found
from broker.serializers import session_out
from broker.sessions.support_sessions import end_session, get_session, start_session
from broker.storage.db_slots import Lane
from broker.storage.models import SupportSession, Ticket, User
from protocol.api import (
    EndedBy,
    SessionCreate,
    SessionEnd,
    SessionOut,
    SessionStarted,
    format_code,
)
from protocol.signalling import SessionEnded

router = APIRouter(prefix="/sessions", tags=["sessions"])


def visible_session(db: DB, user: User, session_id: str) -> SupportSession:
    """The session, if this user may see it (its technician, or an admin)."""
    session = get_session(db, session_id)
    if session is None or (session.technician_id != user.id and not user.is_admin):
        raise not_found(f"session {session_id}")
    return session


@router.post(
    "", response_model=SessionStarted, status_code=201,
    summary="Start a support session on a ticket and get its one-time code",
)
def create(body: SessionCreate, db: DB, user: SessionStarter, state: State, source: Source) -> SessionStarted:
    # The ticket row alone: its sessions, comments and surveys are not needed to add one.
    ticket = db.get(Ticket, body.ticket_id)
    if ticket is None:
        raise not_found(f"ticket {body.ticket_id}")
    session, code = start_session(
        db, user, ticket,
        code_key=state.keys.code_hash_key,
        code_ttl=timedelta(seconds=state.settings.code_ttl_seconds),
        source=source,
    )
    return SessionStarted(session=session_out(session), code=code, code_display=format_code(code))


@router.get("/{session_id}", response_model=SessionOut, summary="A session's state")
def show(session_id: SessionId, db: DB, user: CurrentUser) -> SessionOut:
    return session_out(visible_session(db, user, session_id))


@router.post("/{session_id}/end", response_model=SessionOut, summary="End a session")
async def end(
    session_id: SessionId, body: SessionEnd, user: CurrentUser, state: State, source: Source
) -> SessionOut:
    # ``async`` with a unit of work of its own: committed before the peers are told, on the event loop.
    def _end(db: Session) -> SessionOut:
        session = visible_session(db, user, session_id)
        end_session(
            db, session, ended_by=EndedBy.technician, actor=audit.user_actor(user),
            reason=body.reason, source=source,
        )
        return session_out(session)

    ended = await state.unit(_end, lane=Lane.held)
    state.session_over(
        ended.id, SessionEnded(ended_by=EndedBy.technician.value, reason=body.reason)
    )
    return ended
