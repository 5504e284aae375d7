"""Help requests without a code: the queue, a technician picking one up, expiry.

A request's secret is a host token (``dhh_`` + 256 random bits) stored only as
its SHA-256; picking the request up makes that hash the new session's host
token hash, so the host that holds the secret is the session's host. Every
change of state is a conditional UPDATE on the current state: of two
technicians picking the same request, of a pick racing a cancel or an expiry,
exactly one wins.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from broker.accounts.tokens import HOST_TOKEN_PREFIX, hash_token, new_token
from broker.audit import events as audit
from broker.clock import utcnow
from broker.helpdesk.tickets import add_comment, assign, get_ticket, open_ticket
from broker.refusals import Conflict, Gone
from broker.serializers import user_brief
from broker.sessions.support_sessions import connected, get_session
from broker.storage.db import changed_rows
from broker.storage.models import HelpRequest, SupportSession, Ticket, User
from protocol.api import HostInfo, Priority, SessionState
from protocol.helpdesk import CommentKind, TicketOrigin, Visibility
from protocol.requests import HelpRequestCreate, HelpRequestOut, HelpRequestState

NO_CODE = "-"
"""``code_hash`` of a session that started from a request: no code hash (64 hex digits) equals it."""

_WAITING = HelpRequestState.waiting.value

QUEUE_CHANGED = "help-request-queue"
"""The ``BrokerState.queue_signals`` key fired whenever the queue changes (new, picked, cancelled,
expired): every waiting host's poll then looks again at its state and place."""


def requester_actor(request_id: str) -> str:
    """The audit actor of the end user behind a request (no account, no session yet)."""
    return f"requester:{request_id}"


def request_taken(request: HelpRequest, *, picked: str | None = None) -> Conflict | Gone:
    """Why ``request``, no longer waiting, cannot be cancelled or picked up: picked up by someone
    (``picked`` words that case, when given), withdrawn, or expired."""
    if request.state == HelpRequestState.picked.value:
        who = request.picked_by
        name = f"{who.display_name} ({who.username})" if who is not None else "another technician"
        return Conflict("request_taken", picked or f"{name} already picked this request up", detail={
            "picked_by": who.username if who is not None else None, "session_id": request.session_id,
        })
    if request.state == HelpRequestState.cancelled.value:
        return Gone("request_cancelled", "the requester withdrew this help request")
    return Gone("request_expired", "this help request expired: the requester's computer stopped waiting")


def create_request(db: Session, body: HelpRequestCreate, *, source: str | None) -> tuple[HelpRequest, str]:
    """Open a ticket for ``body`` and queue a request on it; return the request and its secret."""
    ticket = open_ticket(
        db, subject=body.summary, description=body.details, requester_name=body.name,
        requester_email=str(body.email) if body.email else "", priority=body.priority.value,
        origin=TicketOrigin.host, created_by=None, actor=audit.ANONYMOUS, source=source,
    )
    token, token_hash = new_token(HOST_TOKEN_PREFIX)
    now = utcnow()
    request = HelpRequest(
        id=str(uuid.uuid4()), ticket=ticket, token_hash=token_hash, state=_WAITING,
        machine_name=body.machine_name, os=body.os, user_name=body.user_name, address=source,
        created_at=now, last_seen_at=now,
    )
    db.add(request)
    db.flush()
    audit.record(
        db, "request.created", actor=requester_actor(request.id), source=source, ticket_id=ticket.id,
        request_id=request.id, machine_name=body.machine_name, os=body.os, user_name=body.user_name,
        priority=body.priority.value,
    )
    return request, token


def waiting_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(HelpRequest).where(HelpRequest.state == _WAITING)) or 0


def queue_position(db: Session, request: HelpRequest) -> int | None:
    """1 for the next request to be picked up (oldest first); None when not waiting."""
    if request.state != _WAITING:
        return None
    ahead = db.scalar(
        select(func.count()).select_from(HelpRequest).where(
            HelpRequest.state == _WAITING,
            or_(
                HelpRequest.created_at < request.created_at,
                and_(HelpRequest.created_at == request.created_at, HelpRequest.id < request.id),
            ),
        )
    )
    return (ahead or 0) + 1


def get_request(db: Session, request_id: str) -> HelpRequest | None:
    return db.scalars(
        select(HelpRequest)
        .where(HelpRequest.id == request_id)
        .options(selectinload(HelpRequest.ticket), selectinload(HelpRequest.picked_by))
    ).one_or_none()


def token_matches(request: HelpRequest, token: str | None) -> bool:
    """Whether ``token`` is this request's secret (constant-time over the hashes)."""
    if token is None:
        return False
    return hmac.compare_digest(hash_token(token), request.token_hash)


def seen(request: HelpRequest) -> None:
    """The host polled: the request is alive (see :func:`expire_idle_requests`)."""
    request.last_seen_at = utcnow()


def waiting_requests(db: Session, limit: int = 200) -> list[HelpRequest]:
    """The queue, next first."""
    return list(
        db.scalars(
            select(HelpRequest)
            .where(HelpRequest.state == _WAITING)
            .options(selectinload(HelpRequest.ticket), selectinload(HelpRequest.picked_by))
            .order_by(HelpRequest.created_at, HelpRequest.id)
            .limit(limit)
        )
    )


def _leave_queue(db: Session, request: HelpRequest, target: HelpRequestState, **values: object) -> bool:
    """Move ``request`` from waiting to ``target``; False when it was no longer waiting."""
    won = changed_rows(
        db,
        update(HelpRequest)
        .where(HelpRequest.id == request.id, HelpRequest.state == _WAITING)
        .values(state=target.value, **values)
    )
    db.refresh(request)
    return won == 1


def cancel_request(db: Session, request: HelpRequest, *, source: str | None) -> None:
    """The user withdrew the request; refused (:func:`request_taken`) unless it was waiting."""
    if not _leave_queue(db, request, HelpRequestState.cancelled):
        raise request_taken(request, picked="a technician already picked this request up: end the session instead")
    audit.record(
        db, "request.cancelled", actor=requester_actor(request.id), source=source,
        ticket_id=request.ticket_id, request_id=request.id,
    )
    add_comment(
        db, request.ticket, kind=CommentKind.note, visibility=Visibility.internal,
        body="The requester withdrew the help request before a technician picked it up.",
        actor=requester_actor(request.id), source=source,
    )


def pick_up(db: Session, request: HelpRequest, technician: User, *, source: str | None) -> SupportSession:
    """Start ``technician``'s session with the waiting host of ``request``.

    The session is ``connected`` at once (the host is polling), its host token
    is the request's secret. Refused (:func:`request_taken`) if someone else was faster,
    or the request was cancelled or expired.
    """
    now = utcnow()
    session_id = str(uuid.uuid4())
    if not _leave_queue(
        db, request, HelpRequestState.picked, picked_at=now, picked_by_id=technician.id,
    ):
        raise request_taken(request)
    ticket = request.ticket
    session = SupportSession(
        id=session_id, ticket=ticket, technician=technician, state=SessionState.connected.value,
        code_hash=NO_CODE, code_expires_at=now, created_at=now, connected_at=now,
        host_token_hash=request.token_hash, host_machine_name=request.machine_name, host_os=request.os,
        host_user_name=request.user_name, host_address=request.address,
    )
    db.add(session)
    db.flush()
    request.session_id = session.id
    actor = audit.user_actor(technician)
    # The same trail as a code's session (created, then a host on it), with the request
    # in place of the code: an auditor finds who asked, who answered, and which machine.
    audit.record(db, "session.created", actor=actor, source=source, session_id=session.id,
                 ticket_id=ticket.id, request_id=request.id)
    audit.record(
        db, "request.picked", actor=actor, source=source, session_id=session.id, ticket_id=ticket.id,
        request_id=request.id, waited_seconds=round((now - request.created_at).total_seconds()),
        machine_name=request.machine_name, os=request.os, user_name=request.user_name,
    )
    if ticket.assignee_id is None and ticket.assignee_team_id is None:
        assign(db, ticket, assignee=technician, team=None, actor=actor, source=source)
    connected(db, session, now)
    found = get_session(db, session.id)
    assert found is not None
    return found


@dataclass(frozen=True)
class ExpiredRequest:
    request_id: str
    ticket_id: int


def expire_idle_requests(db: Session, idle: timedelta, now: datetime | None = None) -> list[ExpiredRequest]:
    """Expire every waiting request whose host has not polled for ``idle``; return them."""
    now = now or utcnow()
    idle_rows = db.execute(
        select(HelpRequest.id, HelpRequest.ticket_id).where(
            HelpRequest.state == _WAITING, HelpRequest.last_seen_at <= now - idle
        )
    ).all()
    expired = []
    for row in idle_rows:
        won = changed_rows(
            db,
            update(HelpRequest)
            .where(HelpRequest.id == row.id, HelpRequest.state == _WAITING, HelpRequest.last_seen_at <= now - idle)
            .values(state=HelpRequestState.expired.value)
        )
        if won == 1:
            audit.record(db, "request.expired", actor=audit.BROKER, ticket_id=row.ticket_id,
                         request_id=row.id, idle_seconds=int(idle.total_seconds()))
            ticket = get_ticket(db, row.ticket_id)
            if ticket is not None:
                add_comment(
                    db, ticket, kind=CommentKind.note, visibility=Visibility.internal,
                    body="The help request expired: the requester's computer stopped waiting "
                    "before a technician picked it up.",
                    actor=audit.BROKER,
                )
            expired.append(ExpiredRequest(row.id, row.ticket_id))
    return expired


def request_out(request: HelpRequest, position: int | None) -> HelpRequestOut:
    """The API view of ``request``; ``position`` from :func:`queue_position` (or the queue's order)."""
    ticket: Ticket = request.ticket
    return HelpRequestOut(
        id=request.id, ticket_id=request.ticket_id, state=HelpRequestState(request.state),
        subject=ticket.subject, requester_name=ticket.requester_name,
        requester_email=ticket.requester_email, priority=Priority(ticket.priority),
        details=ticket.description,
        host=HostInfo(machine_name=request.machine_name, os=request.os, user_name=request.user_name),
        created_at=request.created_at, last_seen_at=request.last_seen_at,
        position=position,
        picked_by=user_brief(request.picked_by) if request.picked_by is not None else None,
        picked_at=request.picked_at, session_id=request.session_id,
    )
