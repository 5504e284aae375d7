"""Signed grants: what the broker allows a technician to do in one session.

The broker signs the canonical JSON of a :class:`Grant` with its Ed25519 key
(``broker.sessions.grants.sign_grant``); the host verifies it with the key it received when it
joined and pins for the session (``host_client.grant_check.verify_grant``), so a grant
cannot be forged, replayed into another session or used after it expires. Here: the
grant, the bytes both sides sign and check (:func:`canonical_bytes`) and the judgement
of its terms (:func:`judge_grant`); pure functions over plain data, no cryptography, no I/O.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from .permissions import Permission, ordered

GRANT_VERSION = 1
_DOMAIN = b"deskhand-grant-v1\n"
"""Prefix of every signed payload: a signature over a grant can never pass for anything else."""

CLOCK_SKEW_SECONDS = 120
"""How far a host's clock may be ahead of or behind the broker's."""


class Grant(BaseModel):
    """The broker's statement of what a technician may do in a session, until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = GRANT_VERSION
    session_id: str = Field(max_length=64)
    ticket_id: int
    technician_id: int
    technician_name: str = Field(max_length=120)
    permissions: list[Permission] = Field(max_length=len(Permission))
    issued_at: int
    """Seconds since the epoch (UTC)."""
    expires_at: int

    def permission_set(self) -> frozenset[Permission]:
        return frozenset(self.permissions)


class SignedGrant(BaseModel):
    """A grant as it travels: the grant and the base64 Ed25519 signature of its canonical form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grant: Grant
    signature: str = Field(max_length=200)


class GrantRejected(Exception):
    """The grant must not be used; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def canonical_bytes(grant: Grant) -> bytes:
    """The exact bytes that are signed: domain prefix + sorted, compact, UTF-8 JSON."""
    data = grant.model_dump(mode="json")
    data["permissions"] = [p.value for p in ordered(grant.permissions)]
    return _DOMAIN + json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def judge_grant(grant: Grant, *, session_id: str, now: datetime | None = None) -> Grant:
    """Return ``grant`` if its terms hold for this session now (its signature already checked);
    else raise :class:`GrantRejected`. Pure: the signature check is the host's
    (``host_client.grant_check``), the signing the broker's (``broker.sessions.grants``)."""
    if grant.v != GRANT_VERSION:
        raise GrantRejected(f"grant version {grant.v} is not understood")
    if grant.session_id != session_id:
        raise GrantRejected("the grant is for another session")
    if grant.expires_at <= grant.issued_at:
        raise GrantRejected("the grant expires before it was issued")
    if not is_current(grant, now):
        moment = int((now or datetime.now(UTC)).timestamp())
        if grant.issued_at > moment:
            raise GrantRejected("the grant was issued in the future (check this computer's clock)")
        raise GrantRejected("the grant has expired")
    return grant


def is_current(grant: Grant, now: datetime | None = None) -> bool:
    """Whether ``grant`` is inside its validity window (with the allowed clock skew)."""
    moment = int((now or datetime.now(UTC)).timestamp())
    return grant.issued_at <= moment + CLOCK_SKEW_SECONDS and grant.expires_at > moment - CLOCK_SKEW_SECONDS
