"""Issuing signed grants for support sessions.

Until roles arrive (accounts issue), every technician holds every session
permission; :func:`session_permissions` is the one place that decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.grants import Grant, SignedGrant, sign_grant
from protocol.permissions import ALL_PERMISSIONS, Permission

from . import audit
from .clock import utcnow
from .keys import BrokerKeys
from .models import AuditEvent, SupportSession


def session_permissions(session: SupportSession) -> frozenset[Permission]:
    """What the session's technician may do in it."""
    return ALL_PERMISSIONS


def issue_grant(keys: BrokerKeys, session: SupportSession, ttl: timedelta) -> SignedGrant:
    """A fresh grant for ``session`` valid for ``ttl``, signed with the broker key."""
    now = utcnow()
    grant = Grant(
        session_id=session.id,
        ticket_id=session.ticket_id,
        technician_id=session.technician.id,
        technician_name=session.technician.display_name,
        permissions=list(session_permissions(session)),
        issued_at=int(now.timestamp()),
        expires_at=int((now + ttl).timestamp()),
    )
    return sign_grant(keys.signing_key, grant)


def audit_grant(db: Session, signed: SignedGrant) -> bool:
    """Record ``grant.issued`` when the grant's permissions differ from the session's last recorded grant.

    Grants are re-issued every few minutes with the same permissions; only the
    first one and each change belong in the trail. Returns whether one was recorded.
    """
    grant = signed.grant
    permissions = sorted(p.value for p in grant.permissions)
    last = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.session_id == grant.session_id, AuditEvent.kind == "grant.issued")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if last is not None and last.data.get("permissions") == permissions:
        return False
    audit.record(
        db, "grant.issued", actor="broker", session_id=grant.session_id, ticket_id=grant.ticket_id,
        technician_id=grant.technician_id, permissions=permissions,
        expires_at=datetime.fromtimestamp(grant.expires_at, timezone.utc).isoformat(),
    )
    return True
