"""Limits on failed attempts, per source and for everyone together.

Sans-I/O: the limiter holds timestamps and answers questions about them; the
caller supplies the clock. A sliding window per key keeps the arithmetic
exact (a fixed window would allow twice the limit across its boundary).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

GLOBAL = "*"
"""The key under which every failure is also counted."""


@dataclass
class SlidingWindowLimiter:
    """Allows ``limit`` events per ``window`` seconds for each key."""

    limit: int
    window: float
    max_keys: int = 100_000
    _events: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may act again, or None when it may act now."""
        events = self._events.get(key)
        if not events:
            return None
        self._expire(events, now)
        if len(events) < self.limit:
            return None
        return max(events[0] + self.window - now, 0.0)

    def record(self, key: str, now: float) -> None:
        """Count one event for ``key`` at ``now``."""
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self.max_keys:
                self._prune(now)
            events = self._events[key] = deque()
        self._expire(events, now)
        events.append(now)

    def forget(self, key: str, at: float) -> None:
        """Take back one event of ``key`` recorded at ``at`` (gone already is fine)."""
        events = self._events.get(key)
        if events is None:
            return
        try:
            events.remove(at)
        except ValueError:
            return
        if not events:
            del self._events[key]

    def _expire(self, events: deque[float], now: float) -> None:
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()

    def _prune(self, now: float) -> None:
        # Bounded memory under a flood of distinct sources: forget idle keys first,
        # then the oldest ones.
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]:
            del self._events[key]
        while len(self._events) >= self.max_keys:
            del self._events[next(iter(self._events))]


@dataclass
class FailureLimiter:
    """Failed attempts limited per source and globally (both must allow)."""

    per_source: SlidingWindowLimiter
    overall: SlidingWindowLimiter

    @classmethod
    def create(cls, per_source: int, overall: int, window: float) -> "FailureLimiter":
        return cls(SlidingWindowLimiter(per_source, window), SlidingWindowLimiter(overall, window))

    def retry_after(self, source: str, now: float) -> int | None:
        """Whole seconds to wait (for a Retry-After header), or None if allowed."""
        waits = [
            w
            for w in (self.per_source.retry_after(source, now), self.overall.retry_after(GLOBAL, now))
            if w is not None
        ]
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def record_failure(self, source: str, now: float) -> None:
        self.per_source.record(source, now)
        self.overall.record(GLOBAL, now)

    def forgive(self, source: str, at: float) -> None:
        """Take back the failure recorded at ``at``: the attempt turned out right.

        Callers count an attempt as a failure *before* checking it, so that
        concurrent attempts see each other, and forgive it when it succeeds.
        """
        self.per_source.forget(source, at)
        self.overall.forget(GLOBAL, at)
