"""The ticket lifecycle: states, the moves between them, and what pauses the SLA.

Pure vocabulary shared by the broker (which enforces it) and both consoles
(which offer only the moves that are allowed).
"""

from __future__ import annotations

import enum


class TicketStatus(str, enum.Enum):
    """Where a ticket is in its life.

    ``new``: nobody has answered yet. ``open``: being worked. ``pending``:
    waiting for the requester or a third party (SLA timers pause).
    ``resolved``: the fix is in; the requester may still object.
    ``closed``: done for good. ``reopened``: the problem came back after
    ``resolved`` or ``closed``.
    """

    new = "new"
    open = "open"
    pending = "pending"
    resolved = "resolved"
    closed = "closed"
    reopened = "reopened"

    @property
    def is_done(self) -> bool:
        """Resolved or closed: not part of the backlog, no SLA timer runs."""
        return self in (TicketStatus.resolved, TicketStatus.closed)

    @property
    def pauses_sla(self) -> bool:
        """The SLA clock stops while the ticket waits on someone else."""
        return self is TicketStatus.pending


_S = TicketStatus

ALLOWED_MOVES: dict[TicketStatus, frozenset[TicketStatus]] = {
    _S.new: frozenset({_S.open, _S.pending, _S.resolved, _S.closed}),
    _S.open: frozenset({_S.pending, _S.resolved, _S.closed}),
    _S.pending: frozenset({_S.open, _S.resolved, _S.closed}),
    _S.resolved: frozenset({_S.closed, _S.reopened}),
    _S.closed: frozenset({_S.reopened}),
    _S.reopened: frozenset({_S.open, _S.pending, _S.resolved, _S.closed}),
}
"""Which status a ticket may move to from each status; staying put is not a move."""


class TransitionRefused(ValueError):
    """A status change the lifecycle does not allow; the message names the allowed ones."""


def check_move(current: TicketStatus, target: TicketStatus) -> None:
    """Raise :class:`TransitionRefused` unless ``current -> target`` is allowed."""
    allowed = ALLOWED_MOVES[current]
    if target not in allowed:
        choices = ", ".join(s.value for s in TicketStatus if s in allowed)
        raise TransitionRefused(
            f"a {current.value} ticket cannot become {target.value}; it can become {choices}"
        )


class Visibility(str, enum.Enum):
    """Who a comment is for: ``internal`` notes stay with technicians, ``public`` replies reach the requester."""

    internal = "internal"
    public = "public"


class CommentKind(str, enum.Enum):
    """What wrote a comment: a technician's ``note`` or ``reply``, or the broker on someone's behalf."""

    note = "note"
    reply = "reply"
    session_report = "session_report"
    survey = "survey"
    inbound = "inbound"


class TicketOrigin(str, enum.Enum):
    """How a ticket came in."""

    console = "console"
    host = "host"
    inbound = "inbound"


class SlaFilter(str, enum.Enum):
    """A ticket list's SLA filter: any timer over its target, one past its warning share, or neither."""

    breached = "breached"
    at_risk = "at_risk"
    on_track = "on_track"


class TicketOrder(str, enum.Enum):
    """How a ticket list is sorted."""

    newest = "newest"
    oldest = "oldest"
    due = "due"
    """Soonest SLA breach first; tickets without a running timer last."""
    updated = "updated"


__all__ = [
    "ALLOWED_MOVES",
    "CommentKind",
    "SlaFilter",
    "TicketOrder",
    "TicketOrigin",
    "TicketStatus",
    "TransitionRefused",
    "Visibility",
    "check_move",
]
