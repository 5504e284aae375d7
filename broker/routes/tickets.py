"""Tickets: open, list, change, assign, comment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from broker.accounts.access import TicketReader, TicketWriter
from broker.accounts.directory import team_named, user_named
from broker.audit import events as audit
from broker.clock import utcnow
from broker.deps import DB, Source, State, TicketId
from broker.helpdesk.tickets import (
    FieldChanges,
    TicketQuery,
    add_comment,
    assign,
    change_status,
    find_by_external,
    get_ticket,
    list_tickets,
    open_ticket,
    update_fields,
)
from broker.refusals import Conflict, Forbidden, Invalid, not_found
from broker.serializers import comment_out, team_brief, ticket_out, ticket_summary, user_brief
from broker.storage.models import Team, Ticket, User
from protocol.api import Assignees, CommentCreate, CommentOut, Priority, TicketCreate, TicketOut, TicketSummary, TicketUpdate
from protocol.helpdesk import CommentKind, SlaFilter, TicketOrder, TicketOrigin, TicketStatus, Visibility

router = APIRouter(prefix="/tickets", tags=["tickets"])

NAME_OR_EMPTY = r"^[A-Za-z0-9._@-]{1,64}$"


def _visible(db: DB, ticket_id: int) -> Ticket:
    ticket = get_ticket(db, ticket_id)
    if ticket is None:
        raise not_found(f"ticket {ticket_id}")
    return ticket


def _assignment(
    db: DB, user: User, assignee: str | None, team: str | None, *, kept_team: Team | None = None,
    current_assignee_id: int | None = None,
) -> tuple[User | None, Team | None]:
    """The named technician and team, checked: enabled, and ``tickets.assign`` unless it is yourself alone.

    A team the ticket already has (``kept_team``) is not a new assignment; replacing
    another technician is (``current_assignee_id``).
    """
    person = user_named(db, assignee) if assignee is not None else None
    group = team_named(db, team) if team is not None else None
    if person is not None and person.disabled_at is not None:
        raise Invalid("invalid_request", f"account {person.username!r} is disabled; assign someone else")
    new_team = group is not None and (kept_team is None or group.id != kept_team.id)
    someone_else = person is not None and person.id != user.id
    replaces_other = current_assignee_id not in (None, user.id) and (person is None or person.id != current_assignee_id)
    if (new_team or someone_else or replaces_other) and "tickets.assign" not in user.permissions:
        raise Forbidden(
            "forbidden", "assigning a ticket to someone else or to a team needs the tickets.assign permission; "
            "you may take a ticket yourself",
        )
    return person, group


def _external_taken(db: DB, system: str, key: str, ticket_id: int | None) -> None:
    other = find_by_external(db, system, key)
    if other is not None and other.id != ticket_id:
        raise Conflict("external_taken", f"{system} {key} is linked to ticket {other.id} already")


@router.post("", response_model=TicketOut, status_code=201, summary="Open a ticket")
def create(body: TicketCreate, db: DB, user: TicketWriter, source: Source, state: State) -> TicketOut:
    person, group = _assignment(db, user, body.assignee, body.team)
    if body.external is not None:
        _external_taken(db, body.external.system, body.external.key, None)
    actor = audit.user_actor(user)
    ticket = open_ticket(
        db, subject=body.subject, description=body.description, requester_name=body.requester_name,
        requester_email=str(body.requester_email), priority=body.priority.value, category=body.category,
        origin=TicketOrigin.console, created_by=user, actor=actor, source=source,
        external=(body.external.system, body.external.key) if body.external else None,
    )
    if person is not None or group is not None:
        assign(db, ticket, assignee=person, team=group, actor=actor, source=source)
    db.flush()
    return ticket_out(_visible(db, ticket.id), state.settings.sla_clock, utcnow())


def _csv(value: str | None, what: str, choices: list[str]) -> list[str]:
    """A comma-separated query value, each item one of ``choices``."""
    if not value:
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise Invalid("invalid_request", f"unknown {what} {unknown[0]!r}; choose from {', '.join(choices)}")
    return names


@router.get("", response_model=list[TicketSummary], summary="List tickets (newest first unless ordered)")
def index(
    db: DB,
    user: TicketReader,
    state: State,
    status: Annotated[str | None, Query(max_length=200, description="Comma-separated statuses")] = None,
    priority: Annotated[str | None, Query(max_length=100, description="Comma-separated priorities")] = None,
    assignee: Annotated[str | None, Query(max_length=64, pattern=NAME_OR_EMPTY,
                                          description="A username, 'me', or 'none' (nobody and no team)")] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    sla: Annotated[SlaFilter | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in subject, requester name or e-mail")] = None,
    external_system: Annotated[str | None, Query(max_length=32)] = None,
    external_key: Annotated[str | None, Query(max_length=128)] = None,
    order: Annotated[TicketOrder, Query()] = TicketOrder.newest,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[TicketSummary]:
    statuses = [TicketStatus(s) for s in _csv(status, "status", [s.value for s in TicketStatus])]
    priorities = _csv(priority, "priority", [p.value for p in Priority])
    assignee_id, unassigned = None, False
    if assignee == "me":
        assignee_id = user.id
    elif assignee == "none":
        unassigned = True
    elif assignee is not None:
        assignee_id = user_named(db, assignee).id
    query = TicketQuery(
        statuses=statuses, priorities=priorities, assignee_id=assignee_id, unassigned=unassigned,
        team_id=team_named(db, team).id if team else None, category=category, sla=sla, text=q,
        external_system=external_system, external_key=external_key, order=order, limit=limit, offset=offset,
    )
    now = utcnow()
    clock = state.settings.sla_clock
    return [ticket_summary(t, n, clock, now) for t, n in list_tickets(db, query, now)]


@router.get("/assignees", response_model=Assignees, summary="Who and which teams tickets can be assigned to")
def assignees(db: DB, _user: TicketReader) -> Assignees:
    people = [u for u in db.scalars(select(User).order_by(User.display_name)).unique().all()
              if u.disabled_at is None and {"tickets.write", "session.start"} & u.permissions]
    teams = db.scalars(select(Team).order_by(Team.name)).all()
    return Assignees(people=[user_brief(u) for u in people], teams=[team_brief(t) for t in teams])


@router.get("/{ticket_id}", response_model=TicketOut, summary="A ticket with its sessions, comments and surveys")
def show(ticket_id: TicketId, db: DB, _user: TicketReader, state: State) -> TicketOut:
    return ticket_out(_visible(db, ticket_id), state.settings.sla_clock, utcnow())


@router.patch(
    "/{ticket_id}", response_model=TicketOut,
    summary="Change a ticket: fields, status (along the lifecycle), assignee, team, external reference",
    responses={409: {"description": "A status change the lifecycle does not allow"}},
)
def change(ticket_id: TicketId, body: TicketUpdate, db: DB, user: TicketWriter, source: Source,
           state: State) -> TicketOut:
    ticket = _visible(db, ticket_id)
    given = body.model_fields_set
    actor = audit.user_actor(user)
    if "external" in given and body.external is not None:
        _external_taken(db, body.external.system, body.external.key, ticket.id)
    if "assignee" in given or "team" in given:
        person, group = _assignment(
            db, user,
            body.assignee if "assignee" in given else (ticket.assignee.username if ticket.assignee else None),
            body.team if "team" in given else (ticket.assignee_team.name if ticket.assignee_team else None),
            kept_team=ticket.assignee_team,
            current_assignee_id=ticket.assignee_id if "assignee" in given else None,
        )
    update_fields(db, ticket, FieldChanges(
        subject=body.subject, description=body.description, requester_name=body.requester_name,
        requester_email=str(body.requester_email) if body.requester_email else None,
        priority=body.priority.value if body.priority else None, category=body.category,
        external=(body.external.system, body.external.key) if body.external else None,
        clear_external="external" in given and body.external is None,
    ), actor=actor, source=source)
    if "assignee" in given or "team" in given:
        assign(db, ticket, assignee=person, team=group, actor=actor, source=source)
    if body.status is not None:
        change_status(db, ticket, body.status, actor=actor, source=source)
    db.flush()
    return ticket_out(_visible(db, ticket.id), state.settings.sla_clock, utcnow())


@router.post(
    "/{ticket_id}/comments", response_model=CommentOut, status_code=201,
    summary="Add an internal note, or a public reply to the requester (a reply is a first response)",
)
def comment(ticket_id: TicketId, body: CommentCreate, db: DB, user: TicketWriter, source: Source) -> CommentOut:
    ticket = _visible(db, ticket_id)
    kind = CommentKind.reply if body.visibility is Visibility.public else CommentKind.note
    added = add_comment(
        db, ticket, kind=kind, visibility=body.visibility, body=body.body, actor=audit.user_actor(user),
        author=user, source=source,
    )
    db.flush()
    db.refresh(added)
    return comment_out(added)
