"""Tickets: the home of every support session."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from protocol.api import TicketCreate

from . import audit
from .clock import utcnow
from .models import SupportSession, Ticket, User


def create_ticket(db: Session, user: User, body: TicketCreate, source: str | None) -> Ticket:
    ticket = Ticket(
        subject=body.subject,
        description=body.description,
        requester_name=body.requester_name,
        requester_email=str(body.requester_email),
        priority=body.priority.value,
        status="open",
        created_by=user,
        created_at=utcnow(),
    )
    db.add(ticket)
    db.flush()
    audit.record(
        db, "ticket.created", actor=audit.user_actor(user), source=source, ticket_id=ticket.id,
        subject=ticket.subject, priority=ticket.priority,
    )
    return ticket


def get_ticket(db: Session, ticket_id: int) -> Ticket | None:
    return db.scalars(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .options(
            selectinload(Ticket.created_by),
            selectinload(Ticket.sessions).selectinload(SupportSession.technician),
        )
    ).one_or_none()


def list_tickets(
    db: Session, *, status: str | None, limit: int, offset: int
) -> list[tuple[Ticket, int]]:
    """Newest first, each with its number of sessions."""
    counts = (
        select(SupportSession.ticket_id, func.count().label("n"))
        .group_by(SupportSession.ticket_id)
        .subquery()
    )
    query = (
        select(Ticket, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.ticket_id == Ticket.id)
        .options(selectinload(Ticket.created_by))
        .order_by(Ticket.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if status is not None:
        query = query.where(Ticket.status == status)
    return [(ticket, count) for ticket, count in db.execute(query).all()]
