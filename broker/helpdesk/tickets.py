"""Tickets: the home of every support session, and their lifecycle.

Every change to a ticket goes through this module, which keeps the status
rules (``protocol.helpdesk``), the SLA timers (``broker.helpdesk.sla``) and the audit
trail in step, in the caller's transaction. Routes, the inbound webhook and
host requests all call the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.orm import Session, selectinload

from broker.audit import events as audit
from broker.clock import utcnow
from broker.helpdesk.sla import SLA_CLOCK_KEY, SlaClock, SlaState, Targets
from broker.refusals import Conflict
from broker.storage.models import SlaTarget, SupportSession, Team, Ticket, TicketComment, User
from protocol.helpdesk import (
    CommentKind,
    SlaFilter,
    TicketOrder,
    TicketOrigin,
    TicketStatus,
    TransitionRefused,
    Visibility,
    check_move,
)

DEFAULT_SLA_CLOCK = SlaClock(business=None)
"""Used by database sessions opened without settings (every target then counts every second)."""


def sla_clock(db: Session) -> SlaClock:
    """The SLA calendars of this database session (``Settings.open_database`` puts them there)."""
    clock = db.info.get(SLA_CLOCK_KEY)
    return clock if isinstance(clock, SlaClock) else DEFAULT_SLA_CLOCK


def targets_for(db: Session, priority: str) -> Targets | None:
    """The SLA targets of a priority, or None if there are none."""
    row = db.get(SlaTarget, priority)
    if row is None:
        return None
    return Targets(row.first_response_minutes * 60, row.resolution_minutes * 60, row.business_hours)


def _store_sla(db: Session, ticket: Ticket, state: SlaState | None, now: datetime) -> None:
    if state is None:
        return
    flags = sla_clock(db).flags(state, now)
    ticket.sla = state.to_json()
    ticket.sla_breached = flags.breached
    ticket.sla_due_at = flags.due_at
    ticket.sla_warn_at = flags.warn_at


def sla_state(ticket: Ticket) -> SlaState | None:
    """The ticket's timers, or None if it has none."""
    return SlaState.from_json(ticket.sla or {})


def open_ticket(
    db: Session,
    *,
    subject: str,
    description: str,
    requester_name: str,
    requester_email: str,
    priority: str,
    category: str = "",
    origin: TicketOrigin,
    created_by: User | None,
    actor: str,
    source: str | None,
    external: tuple[str, str] | None = None,
) -> Ticket:
    """Open a ticket in ``new`` with its SLA timers running; audited ``ticket.created``."""
    now = utcnow()
    ticket = Ticket(
        subject=subject,
        description=description,
        requester_name=requester_name,
        requester_email=requester_email,
        priority=priority,
        category=category,
        status=TicketStatus.new.value,
        created_by=created_by,
        created_via=origin.value,
        created_at=now,
        updated_at=now,
        external_system=external[0] if external else None,
        external_key=external[1] if external else None,
        reopen_count=0,
        sla={},
        sla_breached=False,
    )
    targets = targets_for(db, priority)
    _store_sla(db, ticket, SlaState.start(targets, now) if targets else None, now)
    db.add(ticket)
    db.flush()
    audit.record(
        db, "ticket.created", actor=actor, source=source, ticket_id=ticket.id,
        subject=ticket.subject, priority=ticket.priority, category=ticket.category, origin=origin.value,
        external=_external_json(ticket),
    )
    return ticket


def _external_json(ticket: Ticket) -> dict[str, str] | None:
    if ticket.external_system is None or ticket.external_key is None:
        return None
    return {"system": ticket.external_system, "key": ticket.external_key}


def change_status(db: Session, ticket: Ticket, target: TicketStatus, *, actor: str, source: str | None) -> None:
    """Move the ticket; a :class:`~broker.refusals.Conflict` (``transition_refused``) names the allowed
    moves. A no-op if already there."""
    current = TicketStatus(ticket.status)
    if current is target:
        return
    try:
        check_move(current, target)
    except TransitionRefused as refused:
        raise Conflict("transition_refused", str(refused)) from None
    now = utcnow()
    clock = sla_clock(db)
    state = sla_state(ticket)
    if target is TicketStatus.reopened:
        ticket.reopen_count += 1
        if state is not None:
            state = state.reopened(now)
    elif target.is_done:
        if ticket.first_response_at is None:
            ticket.first_response_at = now
        ticket.resolved_at = ticket.resolved_at if target is TicketStatus.closed and current is TicketStatus.resolved \
            else now
        if target is TicketStatus.closed:
            ticket.closed_at = now
        if state is not None:
            state = state.resolved(now, clock.calendar(state))
    elif target.pauses_sla:
        if state is not None:
            state = state.pause(now, clock.calendar(state))
    elif state is not None:
        state = state.resume(now)
    ticket.status = target.value
    ticket.updated_at = now
    _store_sla(db, ticket, state, now)
    audit.record(
        db, "ticket.status_changed", actor=actor, source=source, ticket_id=ticket.id,
        **{"from": current.value, "to": target.value},
    )


def mark_first_response(db: Session, ticket: Ticket, at: datetime, *, actor: str, source: str | None = None) -> None:
    """The requester heard from a technician (a public reply, a connected session). Only the first counts.

    A ``new`` ticket becomes ``open``.
    """
    if ticket.first_response_at is not None:
        return
    ticket.first_response_at = at
    state = sla_state(ticket)
    if state is not None:
        _store_sla(db, ticket, state.responded(at, sla_clock(db).calendar(state)), at)
    audit.record(db, "ticket.first_response", actor=actor, source=source, ticket_id=ticket.id)
    if ticket.status == TicketStatus.new.value:
        change_status(db, ticket, TicketStatus.open, actor=actor, source=source)


def add_comment(
    db: Session,
    ticket: Ticket,
    *,
    kind: CommentKind,
    visibility: Visibility,
    body: str,
    actor: str,
    author: User | None = None,
    session_id: str | None = None,
    source: str | None = None,
) -> TicketComment:
    """Add a note or reply; a technician's public reply is the ticket's first response."""
    now = utcnow()
    comment = TicketComment(
        ticket=ticket, at=now, kind=kind.value, visibility=visibility.value, author_id=author.id if author else None,
        author=actor, session_id=session_id, body=body,
    )
    db.add(comment)
    ticket.updated_at = now
    db.flush()
    audit.record(
        db, "ticket.commented", actor=actor, source=source, session_id=session_id, ticket_id=ticket.id,
        comment_id=comment.id, comment_kind=kind.value, visibility=visibility.value, body=body,
    )
    if kind is CommentKind.reply and author is not None:
        mark_first_response(db, ticket, now, actor=actor, source=source)
    return comment


def assign(
    db: Session, ticket: Ticket, *, assignee: User | None, team: Team | None, actor: str, source: str | None
) -> None:
    """Set who works the ticket (a technician, a team, both or neither); a ``new`` ticket becomes ``open``."""
    if ticket.assignee_id == (assignee.id if assignee else None) and \
            ticket.assignee_team_id == (team.id if team else None):
        return
    ticket.assignee = assignee
    ticket.assignee_team = team
    ticket.updated_at = utcnow()
    audit.record(
        db, "ticket.assigned", actor=actor, source=source, ticket_id=ticket.id,
        assignee=assignee.username if assignee else None, team=team.name if team else None,
    )
    if (assignee or team) and ticket.status == TicketStatus.new.value:
        change_status(db, ticket, TicketStatus.open, actor=actor, source=source)


@dataclass(frozen=True)
class FieldChanges:
    """Plain field changes of a ticket (everything but status and assignment, which have their own moves)."""

    subject: str | None = None
    description: str | None = None
    requester_name: str | None = None
    requester_email: str | None = None
    priority: str | None = None
    category: str | None = None
    external: tuple[str, str] | None = None
    clear_external: bool = False


def update_fields(db: Session, ticket: Ticket, changes: FieldChanges, *, actor: str, source: str | None) -> list[str]:
    """Apply the changes that differ; audited ``ticket.updated`` with the names (and short values) changed."""
    changed: dict[str, object] = {}
    for name in ("subject", "description", "requester_name", "requester_email", "category"):
        value = getattr(changes, name)
        if value is not None and value != getattr(ticket, name):
            setattr(ticket, name, value)
            changed[name] = value if name != "description" else f"{len(value)} characters"
    now = utcnow()
    if changes.priority is not None and changes.priority != ticket.priority:
        _retarget(db, ticket, changes.priority, now)
        changed["priority"] = ticket.priority = changes.priority
    if changes.clear_external and ticket.external_system is not None:
        ticket.external_system = ticket.external_key = None
        changed["external"] = None
    elif changes.external is not None and changes.external != (ticket.external_system, ticket.external_key):
        ticket.external_system, ticket.external_key = changes.external
        changed["external"] = _external_json(ticket)
    if changed:
        ticket.updated_at = now
        audit.record(db, "ticket.updated", actor=actor, source=source, ticket_id=ticket.id, changes=changed)
    return list(changed)


def _retarget(db: Session, ticket: Ticket, priority: str, now: datetime) -> None:
    state, targets = sla_state(ticket), targets_for(db, priority)
    if targets is None:
        return
    clock = sla_clock(db)
    if state is None:
        # A ticket from before SLAs, or of a priority that had none: its timers start now.
        status = TicketStatus(ticket.status)
        if status.is_done:
            return
        new_state = SlaState.start(targets, now, paused=status.pauses_sla)
        if ticket.first_response_at is not None:
            new_state = new_state.responded(now, clock.calendar(new_state))
    else:
        new_state = state.retarget(targets, now, clock.calendar(state),
                                   clock.business if targets.business_hours and clock.business else clock.always)
    _store_sla(db, ticket, new_state, now)


def refresh_sla(db: Session, ticket: Ticket, now: datetime) -> None:
    """Recompute the derived SLA columns (after targets or the calendar changed)."""
    _store_sla(db, ticket, sla_state(ticket), now)


def record_breaches(db: Session, now: datetime | None = None) -> list[int]:
    """Flag tickets whose running timer ran out since the last look; audit each breach once."""
    now = now or utcnow()
    due = db.scalars(
        select(Ticket).where(Ticket.sla_due_at <= now, Ticket.sla_breached.is_(False))
    ).all()
    clock = sla_clock(db)
    breached = []
    for ticket in due:
        state = sla_state(ticket)
        if state is None:
            continue
        _store_sla(db, ticket, state, now)
        if ticket.sla_breached:
            view = clock.view(state, now)
            audit.record(
                db, "ticket.sla_breached", actor=audit.BROKER, ticket_id=ticket.id,
                timers=[name for name, timer in view.items() if timer.spent_s >= timer.target_s],
                priority=ticket.priority,
            )
            breached.append(ticket.id)
    return breached


def get_ticket(db: Session, ticket_id: int) -> Ticket | None:
    return db.scalars(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .options(
            selectinload(Ticket.created_by),
            selectinload(Ticket.assignee),
            selectinload(Ticket.assignee_team),
            selectinload(Ticket.sessions).selectinload(SupportSession.technician),
            selectinload(Ticket.comments).selectinload(TicketComment.author_user),
            selectinload(Ticket.surveys),
        )
    ).one_or_none()


def find_by_external(db: Session, system: str, key: str) -> Ticket | None:
    """The ticket linked to ``key`` in the external helpdesk ``system``."""
    found = db.scalars(
        select(Ticket.id).where(Ticket.external_system == system, Ticket.external_key == key)
    ).one_or_none()
    return get_ticket(db, found) if found is not None else None


@dataclass(frozen=True)
class TicketQuery:
    """What a ticket list asks for; every field narrows it."""

    statuses: Sequence[TicketStatus] = ()
    priorities: Sequence[str] = ()
    assignee_id: int | None = None
    unassigned: bool = False
    team_id: int | None = None
    category: str | None = None
    sla: SlaFilter | None = None
    text: str | None = None
    external_system: str | None = None
    external_key: str | None = None
    order: TicketOrder = TicketOrder.newest
    limit: int = 100
    offset: int = 0


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_tickets(db: Session, query: TicketQuery, now: datetime | None = None) -> list[tuple[Ticket, int]]:
    """Tickets matching ``query``, each with its number of sessions."""
    now = now or utcnow()
    counts = (
        select(SupportSession.ticket_id, func.count().label("n"))
        .group_by(SupportSession.ticket_id)
        .subquery()
    )
    breached = or_(Ticket.sla_breached.is_(True), Ticket.sla_due_at <= now)
    conditions: list[ColumnElement[bool]] = []
    if query.statuses:
        conditions.append(Ticket.status.in_([s.value for s in query.statuses]))
    if query.priorities:
        conditions.append(Ticket.priority.in_(list(query.priorities)))
    if query.unassigned:
        conditions.append(and_(Ticket.assignee_id.is_(None), Ticket.assignee_team_id.is_(None)))
    if query.assignee_id is not None:
        conditions.append(Ticket.assignee_id == query.assignee_id)
    if query.team_id is not None:
        conditions.append(Ticket.assignee_team_id == query.team_id)
    if query.category is not None:
        conditions.append(Ticket.category == query.category)
    if query.sla is SlaFilter.breached:
        conditions.append(breached)
    elif query.sla is SlaFilter.at_risk:
        conditions.append(and_(not_(breached), Ticket.sla_warn_at <= now))
    elif query.sla is SlaFilter.on_track:
        conditions.append(and_(not_(breached), or_(Ticket.sla_warn_at.is_(None), Ticket.sla_warn_at > now)))
    if query.text:
        pattern = _like(query.text)
        conditions.append(or_(
            Ticket.subject.ilike(pattern, escape="\\"),
            Ticket.requester_name.ilike(pattern, escape="\\"),
            Ticket.requester_email.ilike(pattern, escape="\\"),
        ))
    if query.external_system is not None:
        conditions.append(Ticket.external_system == query.external_system)
    if query.external_key is not None:
        conditions.append(Ticket.external_key == query.external_key)
    order = {
        TicketOrder.newest: (Ticket.id.desc(),),
        TicketOrder.oldest: (Ticket.id.asc(),),
        TicketOrder.due: (Ticket.sla_due_at.is_(None), Ticket.sla_due_at.asc(), Ticket.id.asc()),
        TicketOrder.updated: (Ticket.updated_at.desc(), Ticket.id.desc()),
    }[query.order]
    statement = (
        select(Ticket, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.ticket_id == Ticket.id)
        .where(*conditions)
        .options(selectinload(Ticket.created_by), selectinload(Ticket.assignee), selectinload(Ticket.assignee_team))
        .order_by(*order)
        .limit(query.limit)
        .offset(query.offset)
    )
    return [(ticket, count) for ticket, count in db.execute(statement).all()]


def sla_targets(db: Session) -> list[SlaTarget]:
    return list(db.scalars(select(SlaTarget)).all())


def set_sla_targets(db: Session, targets: Sequence[SlaTarget], *, actor: str, source: str | None) -> None:
    """Replace the targets of the given priorities. Tickets keep the targets they were opened with."""
    for target in targets:
        existing = db.get(SlaTarget, target.priority)
        if existing is None:
            db.add(target)
        else:
            existing.first_response_minutes = target.first_response_minutes
            existing.resolution_minutes = target.resolution_minutes
            existing.business_hours = target.business_hours
    audit.record(
        db, "sla.targets_changed", actor=actor, source=source,
        targets=[{"priority": t.priority, "first_response_minutes": t.first_response_minutes,
                  "resolution_minutes": t.resolution_minutes, "business_hours": t.business_hours} for t in targets],
    )
