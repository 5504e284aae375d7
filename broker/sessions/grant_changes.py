"""Which writes can change a live session's grant, and the one counter they bump.

A grant carries what the technician may do (``broker.sessions.grants``): it follows from
their roles, teams and account, and their signalling lasts only as long as the
token they connected with. Every unit of work that changes one of these, by
any route or the ``deskhand-broker`` commands in another process, bumps the
single ``grant_changes`` row in its own transaction (a ``before_flush`` hook on
the broker's sessions, :func:`count_grant_changes`). The grant watcher
(``broker.sessions.grant_watch``) reads that row about once a second and looks at the
connected sessions only when it moved.

Writes that bypass the ORM's unit of work (``update()`` statements) are not
seen; none of them touches what is listed here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import AccessToken, GrantChanges, Role, Team, TeamMember, User, UserRole

COUNTER_ID = 1
"""The counter's row (the migration that made the table put it there)."""

GRANT_INPUTS: dict[type, frozenset[str]] = {
    User: frozenset({"disabled_at", "display_name", "roles", "teams"}),
    Role: frozenset({"permissions"}),
    Team: frozenset({"policy", "members"}),
    AccessToken: frozenset({"revoked_at", "expires_at"}),
}
"""Per model, the attributes a grant or a technician's signalling depends on; deleting any such row counts too."""

MEMBERSHIPS = (UserRole, TeamMember)
"""Association rows: adding or removing one changes someone's roles or teams."""


def changes_grants(new: Any, dirty: Any, deleted: Any) -> bool:
    """Whether a flush of these instances can change a live session's grant."""
    for instance in deleted:
        if isinstance(instance, (*GRANT_INPUTS, *MEMBERSHIPS)):
            return True
    for instance in new:
        # A new team may come with members; new accounts, roles and tokens touch no live session.
        if isinstance(instance, (Team, *MEMBERSHIPS)):
            return True
    for instance in dirty:
        if isinstance(instance, MEMBERSHIPS):
            return True
        watched = GRANT_INPUTS.get(type(instance))
        if watched:
            attributes = inspect(instance).attrs
            if any(attributes[name].history.has_changes() for name in watched):
                return True
    return False


def bump(db: Session) -> None:
    """Count one change, in ``db``'s transaction."""
    # On the connection, not through the ORM: no identity map to keep in step, one UPDATE.
    db.connection().execute(update(GrantChanges).where(GrantChanges.id == COUNTER_ID).values(count=GrantChanges.count + 1))


def read_count(db: Session) -> int:
    """The number of grant changes so far (read first, before what it guards)."""
    return db.scalar(select(GrantChanges.count).where(GrantChanges.id == COUNTER_ID)) or 0


def count_grant_changes(sessions: sessionmaker[Session]) -> None:
    """Make every session from ``sessions`` bump the counter when it flushes a change to a grant input."""

    @event.listens_for(sessions, "before_flush")
    def _count(db: Session, _context: object, _instances: object) -> None:
        if changes_grants(db.new, db.dirty, db.deleted):
            bump(db)
