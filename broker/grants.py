"""Issuing signed grants for support sessions.

Until roles arrive (accounts issue), every technician holds every session
permission; :func:`session_permissions` is the one place that decides.
"""

from __future__ import annotations

from datetime import timedelta

from protocol.grants import Grant, SignedGrant, sign_grant
from protocol.permissions import ALL_PERMISSIONS, Permission

from .clock import utcnow
from .keys import BrokerKeys
from .models import SupportSession


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
