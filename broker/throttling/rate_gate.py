"""How a door limited by source address refuses, and how the start of a block is audited.

Four doors count what comes from one address (:mod:`broker.throttling.ratelimit` keeps the counts):
sign-ins and support codes count failures, help requests count every request, inbound
webhooks count refused requests. They refuse alike: ``429 rate_limited``, a message naming
what came too often and how long to wait, and ``Retry-After``. The request that starts a
block is audited once (``<door>.rate_limited``, with the wait); the refusals while blocked
are not, so a flood of them cannot fill the trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.refusals import RateLimited
from broker.throttling.ratelimit import FailureCounts


@dataclass(frozen=True)
class RateGate:
    """One door's refusal and block event."""

    too_many: str
    """What came too often, as the refusal says it: "too many <too_many> from this address"."""
    audited_as: str
    """The audit event of a block's start."""

    def refusal(self, wait: int) -> RateLimited:
        """The ``429 rate_limited`` answer, ``wait`` seconds in its message and ``Retry-After``."""
        return RateLimited("rate_limited", f"too many {self.too_many} from this address; try again in {wait} s",
                           retry_after=wait)

    def check(self, limiter: FailureCounts, key: str, now: float) -> None:
        """Refuse while ``key`` is blocked; count nothing."""
        wait = limiter.retry_after(key, now)
        if wait is not None:
            raise self.refusal(wait)

    def count(self, limiter: FailureCounts, key: str, now: float) -> None:
        """Count an attempt of ``key`` (as a failure until forgiven); refuse one beyond the limit."""
        wait = limiter.count_attempt(key, now)
        if wait is not None:
            raise self.refusal(wait)

    def audit_block(self, db: Session, source: str | None, wait: int | None) -> None:
        """Audit the start of a block of ``wait`` seconds (nothing when ``wait`` is None: no block began)."""
        if wait is not None:
            audit.record(db, self.audited_as, actor=audit.ANONYMOUS, source=source, retry_after=wait)


SIGN_INS = RateGate("failed sign-ins", "auth.rate_limited")
SUPPORT_CODES = RateGate("wrong codes", "code.rate_limited")
HELP_REQUESTS = RateGate("help requests", "request.rate_limited")
INBOUND_REQUESTS = RateGate("refused requests", "inbound.rate_limited")
