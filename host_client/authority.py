"""What the technician may do right now: the broker's grant intersected with the user's consent.

Pure state over plain data; the session feeds it grants and consent changes
and asks it before applying anything the technician sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.grants import Grant, GrantRejected, SignedGrant, is_current
from protocol.permissions import Permission

from .grant_check import verify_grant


@dataclass
class Authority:
    """Grant ∩ consent for one session, with the broker key pinned at join."""

    broker_key: Ed25519PublicKey
    session_id: str
    grant: Grant | None = None
    consent: frozenset[Permission] = frozenset()
    consent_given: bool = False
    rejected_grants: list[str] = field(default_factory=list)
    control_paused: str | None = None
    """Why control is paused regardless of grant and consent (recording fell behind)."""

    def accept_grant(self, signed: SignedGrant, now: datetime | None = None) -> Grant:
        """Verify and adopt a new grant; a bad one is refused and the previous one stays."""
        try:
            grant = verify_grant(signed, self.broker_key, session_id=self.session_id, now=now)
        except GrantRejected as rejected:
            self.rejected_grants.append(rejected.reason)
            raise
        self.grant = grant
        return grant

    def set_consent(self, permissions: frozenset[Permission]) -> None:
        self.consent = frozenset(permissions)
        self.consent_given = True

    def granted(self, now: datetime | None = None) -> frozenset[Permission]:
        """What the broker allows now (nothing without a current grant)."""
        if self.grant is None or not is_current(self.grant, now):
            return frozenset()
        return self.grant.permission_set()

    def effective(self, now: datetime | None = None) -> frozenset[Permission]:
        allowed = self.granted(now) & self.consent
        return allowed - {Permission.control} if self.control_paused is not None else allowed

    def allows(self, permission: Permission, now: datetime | None = None) -> bool:
        return permission in self.effective(now)

    def refusal(self, permission: Permission, now: datetime | None = None) -> str | None:
        """Why ``permission`` is refused now, in words for the technician; None when allowed."""
        if self.grant is None:
            if self.rejected_grants:
                return f"the host refused the broker's grant: {self.rejected_grants[-1]}"
            return "the host has no grant from the broker yet"
        if not is_current(self.grant, now):
            return "the broker's grant has expired and no new one arrived"
        if permission not in self.grant.permission_set():
            return f"the broker's grant does not include {permission.value}"
        if not self.consent_given:
            return "the user has not answered the consent prompt yet"
        if permission not in self.consent:
            return f"the user has not allowed {permission.value}"
        if permission is Permission.control and self.control_paused is not None:
            return self.control_paused
        return None
