"""The host's check of a signed grant: the broker's Ed25519 signature, then its terms.

The key is the one the host received when it joined, pinned for the session; the terms
(version, session, validity window) are judged by :func:`protocol.grants.judge_grant`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.grants import Grant, GrantRejected, SignedGrant, canonical_bytes, judge_grant


def load_public_key(b64: str) -> Ed25519PublicKey:
    """The broker key as sent at join (raw 32 bytes, base64)."""
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise GrantRejected(f"the broker's public key is malformed: {exc}") from None


def verify_grant(
    signed: SignedGrant,
    public_key: Ed25519PublicKey,
    *,
    session_id: str,
    now: datetime | None = None,
) -> Grant:
    """Return the grant if it is genuine, for this session and current; else raise :class:`GrantRejected`."""
    try:
        signature = base64.b64decode(signed.signature, validate=True)
        public_key.verify(signature, canonical_bytes(signed.grant))
    except (binascii.Error, ValueError, InvalidSignature):
        raise GrantRejected("the grant's signature does not match the broker's key") from None
    return judge_grant(signed.grant, session_id=session_id, now=now)
