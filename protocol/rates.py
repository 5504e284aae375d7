"""Message rates: how fast a sender may go, judged without a clock of its own.

A :class:`TokenBucket` allows ``burst`` messages at once and ``rate`` a second
after that; :class:`MessageRate` adds what a receiver needs to tell the sender
now and then, not once per dropped message. Both take the time as an argument (any
monotonic seconds), so they are pure and tested with plain numbers. The broker
uses them per signalling connection and per peer's event reports, the host per
data channel of the technician.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept; starts full."""

    rate: float
    burst: float
    _tokens: float = field(init=False, repr=False)
    _at: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs a positive rate and room for one token")
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._at is None:
            self._at = now
        elif now > self._at:  # a clock read earlier by another caller may come later: never refill backwards
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def take(self, now: float, n: float = 1) -> bool:
        """Take ``n`` tokens if there are that many now; False (nothing taken) otherwise."""
        self._refill(now)
        if self._tokens < n:
            return False
        self._tokens -= n
        return True

    def wait(self, now: float, n: float = 1) -> float:
        """Seconds until ``n`` tokens are there (0: now); infinite when ``n`` is over the burst."""
        self._refill(now)
        if n > self.burst:
            return float("inf")
        return max(0.0, (n - self._tokens) / self.rate)

    def full(self, now: float) -> bool:
        """Whether the bucket is as full as a new one (it can then be forgotten)."""
        self._refill(now)
        return self._tokens >= self.burst


class Flow(enum.Enum):
    """What to do with one message."""

    accepted = "accepted"
    refused_tell = "refused_tell"
    """Refused, and the sender is to be told (the first refusal in :attr:`MessageRate.notice_seconds`)."""
    refused = "refused"
    """Refused; the sender was told lately."""


@dataclass
class MessageRate:
    """A sender's messages through a :class:`TokenBucket`, the sender told of refusals at most
    once every ``notice_seconds`` (a sustained flood gets a token now and then, and each
    would otherwise start a new run of refusals, and a new notice)."""

    bucket: TokenBucket
    notice_seconds: float = 5.0
    refused_total: int = 0
    _told_at: float | None = field(default=None, repr=False)

    @classmethod
    def per_second(cls, rate: float, burst: float) -> MessageRate:
        return cls(TokenBucket(rate, burst))

    def admit(self, now: float) -> Flow:
        """Count one message at ``now`` and judge it."""
        if self.bucket.take(now):
            return Flow.accepted
        self.refused_total += 1
        if self._told_at is not None and now - self._told_at < self.notice_seconds:
            return Flow.refused
        self._told_at = now
        return Flow.refused_tell

    def describe(self) -> str:
        """The limit in words, for the notice to the sender."""
        return (f"more than {self.bucket.burst:g} messages at once or {self.bucket.rate:g} a second; "
                "messages are dropped until you slow down")
