"""TOTP (RFC 6238) secrets and codes, and one-time recovery codes.

Pure: the caller passes the time and the last accepted step, and stores what
these functions return. Codes are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp

from protocol.totp import RECOVERY_ALPHABET, RECOVERY_LENGTH, format_recovery_code

ISSUER = "Deskhand"
VALID_WINDOW = 1
"""Steps either side of now that are accepted: clocks drift and people type slowly."""
RECOVERY_CODE_COUNT = 10


def new_secret() -> str:
    """A fresh base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans, labelled ``Deskhand:<username>``."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def accepted_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, if it is valid at ``now`` and newer than ``last_step``.

    A code is good once: the caller stores the returned step as the new
    ``last_step``, so neither the same code nor an older one works again.
    Every candidate step is compared, so timing does not tell which one matched.
    """
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    matched: int | None = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (last_step is None or step > last_step):
            matched = step
    return matched


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh recovery codes, normalized (no separators); show them formatted, store their hashes."""
    return ["".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH)) for _ in range(count)]


def shown(code: str) -> str:
    """How a recovery code is shown to its owner."""
    return format_recovery_code(code)


def recovery_code_hash(code: str) -> str:
    """SHA-256 of a normalized recovery code. Unsalted is enough: each code has ~79 random bits."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def matching_hash(code: str, hashes: list[str]) -> str | None:
    """Which of ``hashes`` belongs to ``code``; every one is compared, in constant time each."""
    wanted = recovery_code_hash(code)
    found = None
    for candidate in hashes:
        if hmac.compare_digest(candidate, wanted):
            found = candidate
    return found
