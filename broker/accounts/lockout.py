"""When an account is locked after failed sign-ins, and for how long.

Pure: the caller supplies the failure count and the clock. After
``failures_before_lock`` consecutive failures the account is locked for
``base_seconds``; every further failure doubles the delay, up to ``max_seconds``.
Attempts made while the account is locked are refused without being checked,
so they neither count nor extend the lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_LOCK_SECONDS = 3600
"""The longest lock, however many failures came before."""


@dataclass(frozen=True)
class LockoutPolicy:
    """The lock rule: how many failures are free, the first delay and its cap."""

    failures_before_lock: int = 5
    base_seconds: float = 30
    max_seconds: float = MAX_LOCK_SECONDS

    def __post_init__(self) -> None:
        if self.failures_before_lock < 1:
            raise ValueError("failures_before_lock must be at least 1")
        if not 0 < self.base_seconds <= self.max_seconds:
            raise ValueError("base_seconds must be positive and at most max_seconds")

    def lock_seconds(self, failures: int) -> float | None:
        """How long ``failures`` consecutive failures lock the account (None: not locked)."""
        if failures < self.failures_before_lock:
            return None
        doublings = failures - self.failures_before_lock
        # Past the cap the exact power does not matter; bounding it avoids a huge 2**n.
        if doublings >= math.log2(self.max_seconds / self.base_seconds) + 1:
            return self.max_seconds
        return float(min(self.base_seconds * 2**doublings, self.max_seconds))

    def locked_until(self, failures: int, now: datetime) -> datetime | None:
        """When a lock started at ``now`` by the ``failures``-th failure ends (None: no lock)."""
        seconds = self.lock_seconds(failures)
        return None if seconds is None else now + timedelta(seconds=seconds)


def retry_after(locked_until: datetime | None, now: datetime) -> int | None:
    """Whole seconds until ``locked_until`` (at least 1, for a Retry-After header), or None if not locked."""
    if locked_until is None or locked_until <= now:
        return None
    return max(1, math.ceil((locked_until - now).total_seconds()))
