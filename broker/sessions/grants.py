"""Issuing signed grants for support sessions.

:func:`session_permissions` is the one place that decides what a technician
may do in a session: the session permissions of their roles, minus what any
of their teams' policies deny (nothing at all while the account is disabled).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.clock import utcnow
from broker.keys import BrokerKeys
from broker.storage.models import AuditEvent, SupportSession, Team, User
from protocol.admin import TeamPolicy
from protocol.grants import Grant, SignedGrant, canonical_bytes
from protocol.permissions import ALL_PERMISSIONS, Permission, ordered
from protocol.recording import SessionPolicy
from protocol.signalling import ConsentSource


def sign_grant(key: Ed25519PrivateKey, grant: Grant) -> SignedGrant:
    """Sign ``grant`` with the broker's key (its permissions put in canonical order first)."""
    grant = grant.model_copy(update={"permissions": ordered(grant.permissions)})
    signature = key.sign(canonical_bytes(grant))
    return SignedGrant(grant=grant, signature=base64.b64encode(signature).decode("ascii"))

def technician_permissions(user: User) -> frozenset[Permission]:
    """The session permissions ``user`` holds through roles, less what their teams deny."""
    allowed = {p for p in ALL_PERMISSIONS if p.value in user.permissions}
    for team in user.teams:
        allowed -= set(team_policy(team).denied)
    return frozenset(allowed)


def team_policy(team: Team) -> TeamPolicy:
    """The team's stored policy (an unreadable one denies every session permission)."""
    try:
        return TeamPolicy.model_validate(team.policy or {})
    except ValueError:
        return TeamPolicy(denied=list(ALL_PERMISSIONS), recording_required=True)


def session_permissions(session: SupportSession) -> frozenset[Permission]:
    """What the session's technician may do in it, now."""
    allowed = technician_permissions(session.technician)
    if session.consent_source == ConsentSource.flag.value and any(
        team_policy(t).control_needs_user for t in session.technician.teams
    ):
        allowed -= {Permission.control}
    return allowed


def session_policy(base: SessionPolicy, session: SupportSession) -> SessionPolicy:
    """The deployment's recording policy, made stricter by the technician's teams."""
    if base.recording_required or not any(team_policy(t).recording_required for t in session.technician.teams):
        return base
    return base.model_copy(update={"recording_required": True})


def session_grant(session: SupportSession, ttl: timedelta) -> Grant:
    """What a grant for ``session`` issued now and valid for ``ttl`` says (not signed yet)."""
    now = utcnow()
    return Grant(
        session_id=session.id,
        ticket_id=session.ticket_id,
        technician_id=session.technician.id,
        technician_name=session.technician.display_name,
        permissions=ordered(session_permissions(session)),
        issued_at=int(now.timestamp()),
        expires_at=int((now + ttl).timestamp()),
    )


def issue_grant(keys: BrokerKeys, session: SupportSession, ttl: timedelta) -> SignedGrant:
    """A fresh grant for ``session`` valid for ``ttl``, signed with the broker key."""
    return sign_grant(keys.signing_key, session_grant(session, ttl))


def renew_grant(keys: BrokerKeys, grant: Grant, ttl: timedelta) -> SignedGrant:
    """``grant`` again, issued now and valid for ``ttl``: for a session whose technician's standing is unchanged."""
    now = utcnow()
    renewed = grant.model_copy(update={"issued_at": int(now.timestamp()), "expires_at": int((now + ttl).timestamp())})
    return sign_grant(keys.signing_key, renewed)


def same_terms(one: Grant, other: Grant) -> bool:
    """Whether two grants allow the same (everything but when they were issued and expire)."""
    return one.model_copy(update={"issued_at": other.issued_at, "expires_at": other.expires_at}) == other


def audit_grant(db: Session, signed: SignedGrant) -> bool:
    """Record ``grant.issued`` when the grant's permissions differ from the session's last recorded grant.

    Grants are re-issued every few minutes with the same permissions; only the
    first one and each change belong in the trail. Returns whether one was recorded.
    """
    return audit_grants(db, [signed]) == 1


def audit_grants(db: Session, grants: Sequence[SignedGrant]) -> int:
    """:func:`audit_grant` for grants of many sessions (one each), with one query for what was recorded before.

    Returns how many were recorded.
    """
    last_ids = (
        select(func.max(AuditEvent.id))
        .where(AuditEvent.kind == "grant.issued", AuditEvent.session_id.in_([s.grant.session_id for s in grants]))
        .group_by(AuditEvent.session_id)
    )
    recorded = {
        event.session_id: event.data.get("permissions") for event in db.scalars(select(AuditEvent).where(AuditEvent.id.in_(last_ids)))
    }
    count = 0
    for signed in grants:
        grant = signed.grant
        permissions = sorted(p.value for p in grant.permissions)
        if grant.session_id in recorded and recorded[grant.session_id] == permissions:
            continue
        audit.record(
            db, "grant.issued", actor="broker", session_id=grant.session_id, ticket_id=grant.ticket_id,
            technician_id=grant.technician_id, permissions=permissions,
            expires_at=datetime.fromtimestamp(grant.expires_at, UTC).isoformat(),
        )
        count += 1
    return count
