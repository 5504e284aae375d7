"""ORM rows to API models, in one place so every route shows a thing the same way."""

from __future__ import annotations

from protocol.api import (
    EndedBy,
    HostInfo,
    Priority,
    SessionOut,
    SessionState,
    TicketOut,
    TicketSummary,
    UserBrief,
    UserInfo,
)
from protocol.permissions import ROLE_PERMISSION_NAMES, Permission

from .models import SupportSession, Ticket, User


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


def ticket_summary(ticket: Ticket, session_count: int) -> TicketSummary:
    return TicketSummary(
        id=ticket.id,
        subject=ticket.subject,
        requester_name=ticket.requester_name,
        requester_email=ticket.requester_email,
        priority=Priority(ticket.priority),
        status=ticket.status,
        created_at=ticket.created_at,
        created_by=user_brief(ticket.created_by),
        session_count=session_count,
    )


def ticket_out(ticket: Ticket) -> TicketOut:
    return TicketOut(
        **ticket_summary(ticket, len(ticket.sessions)).model_dump(),
        description=ticket.description,
        sessions=[session_out(s) for s in ticket.sessions],
    )
