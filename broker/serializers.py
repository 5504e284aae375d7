"""ORM rows to API models, in one place so every route shows a thing the same way."""

from __future__ import annotations

from datetime import datetime

from broker.helpdesk.sla import SlaClock, SlaState, TimerState
from broker.storage.models import SupportSession, Team, Ticket, TicketComment, User
from protocol.api import (
    CommentOut,
    EndedBy,
    ExternalRef,
    HostInfo,
    Priority,
    SessionJoin,
    SessionOut,
    SessionState,
    SlaOut,
    SlaTimerOut,
    SurveyOut,
    TeamBrief,
    TicketOut,
    TicketSummary,
    UserBrief,
    UserInfo,
    signalling_path,
)
from protocol.helpdesk import ALLOWED_MOVES, CommentKind, TicketOrigin, TicketStatus, Visibility
from protocol.ice import IceConfig
from protocol.permissions import ROLE_PERMISSION_NAMES, Permission


def user_brief(user: User) -> UserBrief:
    return UserBrief(id=user.id, username=user.username, display_name=user.display_name)


def user_info(user: User) -> UserInfo:
    return UserInfo(
        **user_brief(user).model_dump(), is_admin=user.is_admin, roles=[r.name for r in user.roles],
        permissions=[name for name in ROLE_PERMISSION_NAMES if name in user.permissions],
    )


def host_info(session: SupportSession) -> HostInfo | None:
    if session.host_machine_name is None:
        return None
    return HostInfo(
        machine_name=session.host_machine_name,
        os=session.host_os or "",
        user_name=session.host_user_name or "",
    )


def session_out(session: SupportSession) -> SessionOut:
    return SessionOut(
        id=session.id,
        ticket_id=session.ticket_id,
        technician=user_brief(session.technician),
        state=SessionState(session.state),
        created_at=session.created_at,
        code_expires_at=session.code_expires_at,
        connected_at=session.connected_at,
        ended_at=session.ended_at,
        ended_by=EndedBy(session.ended_by) if session.ended_by else None,
        end_reason=session.end_reason,
        host=host_info(session),
        consent=[Permission(p) for p in session.consent] if session.consent is not None else None,
        consent_source=session.consent_source,
    )


def team_brief(team: Team) -> TeamBrief:
    return TeamBrief(id=team.id, name=team.name)


def sla_out(ticket: Ticket, clock: SlaClock, now: datetime) -> SlaOut | None:
    """The ticket's SLA timers as of ``now``; None if it has none."""
    state = SlaState.from_json(ticket.sla or {})
    if state is None:
        return None
    timers = {
        name: SlaTimerOut(state=v.state.value, target_s=v.target_s, spent_s=round(v.spent_s, 1),
                          due_at=v.due_at, met_at=v.met_at)
        for name, v in clock.view(state, now).items()
    }
    states = {t.state for t in timers.values()}
    return SlaOut(
        business_hours=state.business_hours, first_response=timers["first_response"],
        resolution=timers["resolution"], breached=TimerState.breached.value in states,
        at_risk=TimerState.breached.value not in states and TimerState.at_risk.value in states,
    )


def ticket_summary(ticket: Ticket, session_count: int, clock: SlaClock, now: datetime) -> TicketSummary:
    external = (
        ExternalRef(system=ticket.external_system, key=ticket.external_key)
        if ticket.external_system is not None and ticket.external_key is not None else None
    )
    return TicketSummary(
        id=ticket.id,
        subject=ticket.subject,
        requester_name=ticket.requester_name,
        requester_email=ticket.requester_email,
        priority=Priority(ticket.priority),
        status=TicketStatus(ticket.status),
        category=ticket.category,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        created_by=user_brief(ticket.created_by) if ticket.created_by else None,
        created_via=TicketOrigin(ticket.created_via),
        assignee=user_brief(ticket.assignee) if ticket.assignee else None,
        team=team_brief(ticket.assignee_team) if ticket.assignee_team else None,
        external=external,
        first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at,
        reopen_count=ticket.reopen_count,
        sla=sla_out(ticket, clock, now),
        session_count=session_count,
    )


def comment_out(comment: TicketComment) -> CommentOut:
    return CommentOut(
        id=comment.id, at=comment.at, kind=CommentKind(comment.kind), visibility=Visibility(comment.visibility),
        author=comment.author, author_user=user_brief(comment.author_user) if comment.author_user else None,
        session_id=comment.session_id, body=comment.body,
    )


def ticket_out(ticket: Ticket, clock: SlaClock, now: datetime) -> TicketOut:
    allowed = ALLOWED_MOVES[TicketStatus(ticket.status)]
    return TicketOut(
        **ticket_summary(ticket, len(ticket.sessions), clock, now).model_dump(),
        description=ticket.description,
        sessions=[session_out(s) for s in ticket.sessions],
        comments=[comment_out(c) for c in ticket.comments],
        surveys=[SurveyOut(session_id=v.session_id, rating=v.rating, comment=v.comment,
                           submitted_at=v.submitted_at) for v in ticket.surveys],
        allowed_statuses=[s for s in TicketStatus if s in allowed],
    )


def session_join(session: SupportSession, ice: IceConfig, broker_public_key: str) -> SessionJoin:
    """What a host needs to enter ``session``, but its host token (joined by code or from a request)."""
    return SessionJoin(
        session_id=session.id,
        ticket_id=session.ticket_id,
        technician=user_brief(session.technician),
        ice=ice,
        broker_public_key=broker_public_key,
        signalling_path=signalling_path(session.id),
    )
