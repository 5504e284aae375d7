"""Limits on failed attempts, per source and for everyone together; rates per key.

Sans-I/O: the limiter holds timestamps and answers questions about them; the
caller supplies the clock. A sliding window per key keeps the arithmetic
exact (a fixed window would allow twice the limit across its boundary).
:class:`AttemptGate` lets no more attempts be checked at once than may still
fail, so that a failure need only be counted once its verdict is in.
:class:`BucketsByKey` keeps a :class:`protocol.rates.TokenBucket` per key (a
session's peer reporting events), where bursts are fine and a steady flood is not.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

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

    def remaining(self, key: str, now: float) -> int:
        """Events ``key`` may still have in the window at ``now`` (0: blocked)."""
        events = self._events.get(key)
        if not events:
            return self.limit
        self._expire(events, now)
        return max(self.limit - len(events), 0)

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


class FailureCounts(Protocol):
    """What a door limited by source address asks of its counts (:mod:`broker.throttling.rate_gate`):
    this broker's own (:class:`FailureLimiter`) or every broker's, in Redis
    (:class:`~broker.throttling.shared_failures.SharedFailureLimiter`, which blocks: call it from a worker thread)."""

    def retry_after(self, source: str, now: float) -> int | None: ...

    def record_failure(self, source: str, now: float) -> None: ...

    def count_attempt(self, source: str, now: float) -> int | None: ...

    def forgive(self, source: str, at: float) -> None: ...


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
    def create(cls, per_source: int, overall: int | None, window: float) -> FailureLimiter:
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

    def remaining(self, source: str, now: float) -> tuple[int, int | None]:
        """Failures ``source`` may still have, and everyone together (None: no global limit)."""
        with self._lock:
            overall = None if self.overall is None else self.overall.remaining(GLOBAL, now)
            return self.per_source.remaining(source, now), overall

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


@dataclass(frozen=True)
class Admitted:
    """The attempt may be checked now; :meth:`AttemptGate.finish` must follow."""


@dataclass(frozen=True)
class Blocked:
    """Refused at once: the source (or everyone) has no failures left for ``retry_after`` whole seconds."""

    retry_after: int


@dataclass(frozen=True)
class Queued:
    """Every slot is taken by attempts still being checked: wait for :meth:`AttemptGate.finish`
    to decide ``ticket`` (or give up with :meth:`AttemptGate.abandon`)."""

    ticket: int


@dataclass(frozen=True)
class Crowded:
    """Refused at once: no slot is free and as many attempts wait as the gate holds."""


Admission = Admitted | Blocked | Queued | Crowded


@dataclass(frozen=True)
class Finished:
    """What finishing an attempt changed."""

    block_started: int | None
    """Whole seconds of the block this attempt's failure started, or None if it started none."""
    decided: dict[int, Admitted | Blocked]
    """Queued tickets now decided: admitted into a freed slot, or blocked by this failure."""


@dataclass
class AttemptGate:
    """Attempts counted as failures only once their verdict is in, and still no more of them
    wrong than :class:`FailureLimiter` allows, however many arrive at once.

    Each source may have as many attempts being checked at once as it may still fail
    (and everyone together as many as may still fail overall): if all of those turn out
    wrong, the limit is reached exactly, never passed. An attempt beyond that waits in a
    queue for a slot; a right one frees its slot for the next, a wrong one uses up an
    allowed failure with it. A blocked source is refused at once, without waiting.

    Sans-I/O: callers pass the clock and do the waiting (:mod:`broker.throttling.attempt_slots`).
    Not thread-safe: meant for one event loop. Memory is bounded: a source takes room only
    while it has attempts in flight or waiting (at most ``max_waiting`` wait in all),
    besides what :class:`FailureLimiter` keeps.
    """

    failures: FailureLimiter
    max_waiting: int = 10_000
    _in_flight: dict[str, int] = field(default_factory=dict, repr=False)
    _in_flight_total: int = 0
    _waiting: dict[str, deque[int]] = field(default_factory=dict, repr=False)
    _waiting_total: int = 0
    _tickets: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def arrive(self, source: str, now: float) -> Admission:
        """An attempt from ``source``: admitted, blocked, queued or (queue full) crowded out."""
        wait = self.failures.retry_after(source, now)
        if wait is not None:
            return Blocked(wait)
        if self._has_slot(source, now):
            self._take(source)
            return Admitted()
        if self._waiting_total >= self.max_waiting:
            return Crowded()
        ticket = next(self._tickets)
        self._waiting.setdefault(source, deque()).append(ticket)
        self._waiting_total += 1
        return Queued(ticket)

    def finish(self, source: str, now: float, *, failed: bool) -> Finished:
        """An admitted attempt of ``source`` has its verdict: ``failed`` if it was wrong (counted
        as a failure now), else it was right or never judged (a crash is not a guess)."""
        count = self._in_flight[source] - 1
        if count:
            self._in_flight[source] = count
        else:
            del self._in_flight[source]
        self._in_flight_total -= 1
        block_started = None
        if failed:
            was_blocked = self.failures.retry_after(source, now) is not None
            self.failures.record_failure(source, now)
            if not was_blocked:
                block_started = self.failures.retry_after(source, now)
        return Finished(block_started, self._decide_waiting(now))

    def abandon(self, source: str, ticket: int) -> None:
        """A queued attempt stopped waiting (it timed out or its client left); gone already is fine."""
        queue = self._waiting.get(source)
        if queue is None or ticket not in queue:
            return
        queue.remove(ticket)
        self._waiting_total -= 1
        if not queue:
            del self._waiting[source]

    def in_flight(self, source: str) -> int:
        """Attempts of ``source`` admitted and not finished yet."""
        return self._in_flight.get(source, 0)

    def _has_slot(self, source: str, now: float) -> bool:
        per_source, overall = self.failures.remaining(source, now)
        if self._in_flight.get(source, 0) >= per_source:
            return False
        return overall is None or self._in_flight_total < overall

    def _take(self, source: str) -> None:
        self._in_flight[source] = self._in_flight.get(source, 0) + 1
        self._in_flight_total += 1

    def _decide_waiting(self, now: float) -> dict[int, Admitted | Blocked]:
        # Every source with waiters, oldest first: a freed global slot may be anyone's.
        decided: dict[int, Admitted | Blocked] = {}
        for source in list(self._waiting):
            queue = self._waiting[source]
            while queue:
                wait = self.failures.retry_after(source, now)
                if wait is not None:
                    decision: Admitted | Blocked = Blocked(wait)
                elif self._has_slot(source, now):
                    self._take(source)
                    decision = Admitted()
                else:
                    break
                decided[queue.popleft()] = decision
                self._waiting_total -= 1
            if not queue:
                del self._waiting[source]
        return decided


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
