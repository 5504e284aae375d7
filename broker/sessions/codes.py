"""Support codes on the broker's side: issuing, hashing and judging a redemption.

The broker never stores a code, only ``HMAC-SHA256(code_hash_key, code)``: with
10^9 codes an unkeyed hash would be reversed by brute force in seconds, the
key keeps a stolen database from revealing live codes.

Codes are not unique forever (10^9 codes run into each other after some tens of
thousands of sessions), only among codes that can still be redeemed; a
redemption looks at every session that ever had the code and decides from the
most relevant one. That decision is :func:`judge_redemption`, a pure function.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from protocol.codes import CODE_DIGITS


def issue_code() -> str:
    """A fresh code: nine digits from the operating system's CSPRNG."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def hash_code(key: bytes, code: str) -> str:
    """The keyed hash stored in place of ``code`` (hex)."""
    return hmac.new(key, code.encode("ascii"), hashlib.sha256).hexdigest()


class Verdict(enum.Enum):
    """What a redemption attempt amounts to."""

    redeemable = "redeemable"
    unknown = "unknown"
    expired = "expired"
    used = "used"
    cancelled = "cancelled"


@dataclass(frozen=True)
class CodeRecord:
    """What the judge needs to know of one session that carries the code."""

    session_id: str
    state: str
    expires_at: datetime
    joined: bool


def judge_redemption(records: list[CodeRecord], now: datetime) -> tuple[Verdict, str | None]:
    """Decide a redemption from every session that carries the code.

    Returns the verdict and, when redeemable, the session to join. A waiting,
    unexpired session wins; otherwise the newest record says whether the code
    was used, ran out, or was cancelled before anyone joined.
    """
    for record in records:
        if record.state == "waiting" and record.expires_at > now:
            return Verdict.redeemable, record.session_id
    if not records:
        return Verdict.unknown, None
    newest = max(records, key=lambda r: r.expires_at)
    if newest.joined:
        return Verdict.used, None
    if newest.state == "ended":
        return Verdict.cancelled, None
    return Verdict.expired, None
