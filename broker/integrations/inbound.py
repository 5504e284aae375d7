"""The inbound webhook: an external helpdesk creates and updates tickets, signed with its shared secret.

Authentication (:func:`authenticate`) and the change (:func:`apply`) are
separate steps: nothing of the body is read, not even as JSON, before its
signature is checked. The ticket changes go through :mod:`broker.helpdesk.tickets`, so
status rules, SLA timers, the audit trail and outbound webhooks apply as for
a change made in the console.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.helpdesk.tickets import FieldChanges, add_comment, change_status, find_by_external, open_ticket, update_fields
from broker.integrations.webhooks import inbound_secret_context
from broker.keys import unwrap
from broker.refusals import Conflict, Invalid
from broker.storage.models import InboundSource
from protocol.helpdesk import CommentKind, TicketOrigin, TicketStatus, Visibility
from protocol.webhooks import InboundResult, InboundTicket, Refusal, verify

REFUSED_MESSAGE = (
    "the request is not signed by a known inbound source: check the system name in the URL, the shared secret, "
    "and that X-Deskhand-Timestamp is the current time"
)
"""One answer for an unknown system and a bad signature alike, so system names cannot be probed."""



class SignatureMemory(Protocol):
    """Where accepted signatures are remembered: this broker's :class:`SeenSignatures`, or every broker's
    (:class:`~broker.integrations.shared_seen.SharedSeenSignatures`, in Redis)."""

    def first_time(self, key: str, now: float) -> bool: ...

    def forget(self, key: str) -> None: ...


class SeenSignatures:
    """Signatures accepted within the tolerance window, to refuse a captured request sent again.

    Sans-I/O: the caller passes the clock. A request is acceptable for twice the
    window after it was first accepted at most (its timestamp may have been
    ``window`` ahead), so entries are kept that long. Memory is bounded: past
    ``max_entries`` the oldest go first. Thread-safe (the broker checks from
    worker threads).
    """

    def __init__(self, window: float, max_entries: int = 100_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str, now: float) -> bool:
        """Remember ``key``; False when it was seen within the window already."""
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if at > now - 2 * self.window and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True

    def forget(self, key: str) -> None:
        """Take ``key`` back: the request it belonged to was not carried out, and may be sent again."""
        with self._lock:
            self._seen.pop(key, None)

def actor(system: str) -> str:
    """Who changes a ticket through the inbound webhook, in the audit trail."""
    return f"inbound:{system}"


def authenticate(
    db: Session,
    master_key: bytes,
    system: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float,
    seen: SignatureMemory,
) -> Refusal | None:
    """None when ``body`` is signed by the enabled source ``system`` and was not seen before."""
    row = db.scalars(
        select(InboundSource).where(InboundSource.system == system, InboundSource.enabled.is_(True))
    ).one_or_none()
    if row is None:
        return Refusal.unknown_source
    secret = unwrap(master_key, row.secret_wrapped, inbound_secret_context(system))
    refusal = verify(secret, timestamp, signature, body, now=now, tolerance=tolerance)
    if refusal is not None:
        return refusal
    # Only an authentic request is remembered: nobody else can fill the memory.
    if not seen.first_time(seen_key(system, signature), now):
        return Refusal.replayed
    return None


def seen_key(system: str, signature: str | None) -> str:
    """The key of an accepted request in :class:`SeenSignatures`."""
    return f"{system}:{signature}"


def apply(db: Session, system: str, body: InboundTicket, *, source: str | None) -> InboundResult:
    """Create the ticket ``(system, body.external_key)`` or change it; refused with
    :class:`~broker.refusals.Conflict` or :class:`~broker.refusals.Invalid`."""
    who = actor(system)
    ticket = find_by_external(db, system, body.external_key)
    created = ticket is None
    changed: list[str] = []
    if ticket is None:
        missing = [f for f in ("subject", "requester_name") if getattr(body, f) is None]
        if missing:
            raise Invalid(
                "invalid_request",
                f"no ticket has external_key {body.external_key!r} yet, and a new one needs {' and '.join(missing)}",
            )
        try:
            ticket = open_ticket(
                db, subject=body.subject or "", description=body.description or "",
                requester_name=body.requester_name or "", requester_email=str(body.requester_email or ""),
                priority=(body.priority.value if body.priority else "normal"), category=body.category or "",
                origin=TicketOrigin.inbound, created_by=None, actor=who, source=source,
                external=(system, body.external_key),
            )
        except IntegrityError:
            # The same key created by a concurrent request: that one won, this one may retry as an update.
            # (The caller's transaction is rolled back by the error.)
            raise Conflict("conflict", f"a ticket for external_key {body.external_key!r} was created "
                                       "at the same moment; send the request again") from None
    else:
        changed += update_fields(db, ticket, FieldChanges(
            subject=body.subject, description=body.description, requester_name=body.requester_name,
            requester_email=str(body.requester_email) if body.requester_email is not None else None,
            priority=body.priority.value if body.priority else None, category=body.category,
        ), actor=who, source=source)
    if body.status is not None and body.status is not TicketStatus(ticket.status):
        change_status(db, ticket, body.status, actor=who, source=source)
        changed.append("status")
    if body.comment is not None:
        add_comment(db, ticket, kind=CommentKind.inbound, visibility=Visibility.public, body=body.comment,
                    actor=who, source=source)
        changed.append("comment")
    db.flush()
    return InboundResult(ticket_id=ticket.id, created=created, external_system=system,
                         external_key=body.external_key, changed=changed)
