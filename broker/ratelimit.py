"""Limits on failed attempts, per source and for everyone together; rates per key.

Sans-I/O: the limiter holds timestamps and answers questions about them; the
caller supplies the clock. A sliding window per key keeps the arithmetic
exact (a fixed window would allow twice the limit across its boundary).
:class:`BucketsByKey` keeps a :class:`protocol.rates.TokenBucket` per key (a
session's peer reporting events), where bursts are fine and a steady flood is not.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from protocol.rates import TokenBucket

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
    """Failed attempts limited per source and, optionally, globally (all limits must allow).

    Thread-safe: async routes use it from the event loop, sync ones (signing in,
    whose argon2 runs in the threadpool) from worker threads.
    """

    per_source: SlidingWindowLimiter
    overall: SlidingWindowLimiter | None = None
    """None: no global limit (for sign-ins, where one would let anyone lock everyone out)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def create(cls, per_source: int, overall: int | None, window: float) -> "FailureLimiter":
        return cls(
            SlidingWindowLimiter(per_source, window),
            None if overall is None else SlidingWindowLimiter(overall, window),
        )

    def retry_after(self, source: str, now: float) -> int | None:
        """Whole seconds to wait (for a Retry-After header), or None if allowed."""
        with self._lock:
            return self._retry_after(source, now)

    def record_failure(self, source: str, now: float) -> None:
        with self._lock:
            self._record(source, now)

    def count_attempt(self, source: str, now: float) -> int | None:
        """Check and count in one step: the wait if ``source`` is blocked (nothing is counted),
        else None, with this attempt counted as a failure until :meth:`forgive` takes it back.

        For callers in threads, where a separate check and count could interleave.
        """
        with self._lock:
            wait = self._retry_after(source, now)
            if wait is None:
                self._record(source, now)
            return wait

    def forgive(self, source: str, at: float) -> None:
        """Take back the failure recorded at ``at``: the attempt turned out right.

        Callers count an attempt as a failure *before* checking it, so that
        concurrent attempts see each other, and forgive it when it succeeds.
        """
        with self._lock:
            self.per_source.forget(source, at)
            if self.overall is not None:
                self.overall.forget(GLOBAL, at)

    def _limiters(self) -> list[tuple[SlidingWindowLimiter, str | None]]:
        limiters: list[tuple[SlidingWindowLimiter, str | None]] = [(self.per_source, None)]
        if self.overall is not None:
            limiters.append((self.overall, GLOBAL))
        return limiters

    def _retry_after(self, source: str, now: float) -> int | None:
        waits = [
            w for limiter, key in self._limiters()
            if (w := limiter.retry_after(key or source, now)) is not None
        ]
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def _record(self, source: str, now: float) -> None:
        for limiter, key in self._limiters():
            limiter.record(key or source, now)


@dataclass
class BucketsByKey:
    """A token bucket per key, ``rate`` a second and ``burst`` at once each; thread-safe.

    Memory stays bounded under many keys: a full bucket is the same as none, so
    those are forgotten first, then the oldest.
    """

    rate: float
    burst: float
    max_keys: int = 100_000
    _buckets: dict[str, TokenBucket] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take(self, key: str, n: int, now: float) -> int | None:
        """Take ``n`` tokens of ``key``'s bucket: None when taken, else whole seconds to wait
        (for a Retry-After header; nothing is taken). ``n`` is at most the burst."""
        if n > self.burst:
            raise ValueError(f"{n} tokens never fit a burst of {self.burst:g}")
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._prune(now)
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            if bucket.take(now, n):
                return None
            return max(1, math.ceil(bucket.wait(now, n)))

    def _prune(self, now: float) -> None:
        for key in [k for k, bucket in self._buckets.items() if bucket.full(now)]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]
