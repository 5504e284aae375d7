"""Tickets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from protocol.api import TicketCreate, TicketOut, TicketSummary

from ..access import TicketReader, TicketWriter
from ..deps import DB, Source, TicketId
from ..errors import not_found
from ..serializers import ticket_out, ticket_summary
from ..tickets import create_ticket, get_ticket, list_tickets

router = APIRouter(prefix="/tickets", tags=["tickets"])


@router.post("", response_model=TicketOut, status_code=201, summary="Open a ticket")
def create(body: TicketCreate, db: DB, user: TicketWriter, source: Source) -> TicketOut:
    ticket = create_ticket(db, user, body, source)
    found = get_ticket(db, ticket.id)
    assert found is not None
    return ticket_out(found)


@router.get("", response_model=list[TicketSummary], summary="List tickets, newest first")
def index(
    db: DB,
    _user: TicketReader,
    status: Annotated[str | None, Query(max_length=16, pattern=r"^[a-z]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[TicketSummary]:
    return [ticket_summary(t, n) for t, n in list_tickets(db, status=status, limit=limit, offset=offset)]


@router.get("/{ticket_id}", response_model=TicketOut, summary="A ticket with its sessions")
def show(ticket_id: TicketId, db: DB, _user: TicketReader) -> TicketOut:
    ticket = get_ticket(db, ticket_id)
    if ticket is None:
        raise not_found(f"ticket {ticket_id}")
    return ticket_out(ticket)
