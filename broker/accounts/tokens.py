"""Bearer tokens: random, shown once, stored only as SHA-256.

Tokens carry 256 bits of randomness, so an unkeyed hash is enough: there is
nothing to brute-force. Lookups are by hash, so the comparison happens inside
the database index and never as a short-circuiting string compare here.
"""

from __future__ import annotations

import hashlib
import secrets

USER_TOKEN_PREFIX = "dhu_"
HOST_TOKEN_PREFIX = "dhh_"


def new_token(prefix: str) -> tuple[str, str]:
    """A fresh token and the hash to store. The prefix tells token kinds apart in reports."""
    token = prefix + secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
