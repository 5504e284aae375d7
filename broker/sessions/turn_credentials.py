"""TURN credentials that expire: coturn's REST-API scheme (``use-auth-secret``), minted per peer and session.

coturn and the broker share one secret. The username is ``EXPIRY:ID`` (EXPIRY in
Unix seconds) and the password base64(HMAC-SHA1(secret, username)); coturn
recomputes the password and refuses an allocation once EXPIRY has passed. So the
broker never hands a long-term TURN password to a peer, and a credential seen in
one session is useless for another ID and after its expiry.

Pure: the time is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnCredential:
    """One peer's TURN username and password, valid until ``expires_at`` (Unix seconds)."""

    username: str
    password: str
    expires_at: int


def turn_user_id(session_id: str, role: str) -> str:
    """The ID part of a username: one per session and peer, so coturn's quotas count per peer."""
    return f"{session_id}.{role}"


def mint(secret: bytes, user_id: str, expires_at: int) -> TurnCredential:
    """The credential coturn accepts for ``user_id`` until ``expires_at``."""
    username = f"{int(expires_at)}:{user_id}"
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return TurnCredential(username=username, password=base64.b64encode(digest).decode(), expires_at=int(expires_at))
