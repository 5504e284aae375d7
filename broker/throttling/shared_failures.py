"""Failed attempts counted in Redis, so that every broker using it shares one limit.

One broker counts failures in its own memory (:class:`~broker.throttling.ratelimit.FailureLimiter`).
Two brokers behind one balancer would each allow the limit: twice the guesses. With
``DESKHAND_REDIS_URL`` set, each attempt is also *reserved* here before it is checked, in one
atomic step (a Lua script) that refuses when the source, or everyone together, has no
failures left in the window. A reservation counts as a failure until it is forgiven (the
attempt was right, or never judged), so attempts checked at once on different brokers
see each other, and the limit is never passed, however many brokers there are.

:class:`SharedFailures` (asyncio) serves support codes beside their
:class:`~broker.throttling.attempt_slots.AttemptSlots`; :class:`SharedFailureLimiter`
(blocking, for worker threads) takes the place of a ``FailureLimiter`` for sign-ins, help
requests and refused inbound webhooks.

Each window is a sorted set (member: the attempt's id, score: Redis's clock in ms), so
the window slides exactly and all brokers judge it by one clock, the Redis server's.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass

import redis
from redis.asyncio import Redis

KEY_PREFIX = "deskhand:failures:"
"""Every key this module writes starts with this, then the limit's name."""

_WINDOWS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[2]
local window = tonumber(ARGV[3])
local in_flight = tonumber(ARGV[4])
local n = #ARGV - 4
local wait = -1
local fills = 0
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local held = redis.call('ZCARD', KEYS[i])
  local limit = tonumber(ARGV[4 + i])
  if held >= limit then
    local oldest = tonumber(redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')[2])
    wait = math.max(wait, oldest + window - now)
  elseif held + 1 == limit then
    fills = 1
  end
end
if mode == 'check' or (mode == 'reserve' and wait >= 0) then
  -- Full only because of attempts still being checked (maybe right)?
  local busy = 0
  if wait >= 0 and in_flight > 0 then
    busy = 1
    for i = 1, n do
      redis.call('ZREMRANGEBYSCORE', KEYS[n + i], '-inf', now - in_flight)
      local judged = redis.call('ZCARD', KEYS[i]) - redis.call('ZCARD', KEYS[n + i])
      if judged >= tonumber(ARGV[4 + i]) then busy = 0 end
    end
  end
  return {0, wait, busy}
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], window)
  if in_flight > 0 then
    redis.call('ZADD', KEYS[n + i], now, ARGV[1])
    redis.call('PEXPIRE', KEYS[n + i], in_flight)
  end
end
return {1, fills * window}
"""
"""KEYS: the source's window, then (optional) everyone's; with an in-flight time, then each window's
set of attempts not judged yet. ARGV: the attempt's id; the mode: ``check`` (count nothing),
``reserve`` (count it unless a window is full) or ``add`` (count it anyway); the window (ms); how
long (ms) an attempt not judged may still be being checked, 0 for none kept; each window's limit.
Returns {0, ms until a failure leaves a full window, or -1: none is full, 1 when every full window
is full only with failures and attempts still being checked} when nothing was counted, {1, ms of
the block a failure of this attempt starts (0: none)} when it was."""

IN_FLIGHT_MS = 5000
"""An attempt reserved but not judged yet may still be being checked (a check takes milliseconds): a
window that is full only counting such attempts is *busy*, and the next attempt waits for them (most
are right codes behind one NAT, forgiven at once) instead of being refused. One judged wrong leaves
the in-flight set at once; one not judged this long (its broker died) counts as the failure it is."""

BUSY_POLL_SECONDS = 0.05
"""How often an attempt waiting for a busy window asks again."""


@dataclass(frozen=True)
class Reservation:
    """An attempt counted as a failure until :meth:`SharedFailures.forgive` takes it back."""

    member: str
    keys: tuple[str, ...]
    in_flight_keys: tuple[str, ...]
    block_seconds: int | None
    """Whole seconds of the block a failure of this attempt starts (it is the last one allowed), else None."""


class RefusedByShared(Exception):
    """No failures left for the source (or for everyone): ``retry_after`` whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"no failures left for {retry_after} s")
        self.retry_after = retry_after


def window_keys(prefix: str, source: str, *, overall: bool) -> tuple[str, ...]:
    """The sorted sets of ``source``'s window and, with ``overall``, of everyone's."""
    keys = (f"{prefix}source:{source}",)
    return (*keys, f"{prefix}all") if overall else keys


def whole_seconds(ms: int) -> int:
    """Milliseconds as the whole seconds a ``Retry-After`` says (at least 1)."""
    return max(1, math.ceil(ms / 1000))


class SharedFailures:
    """One limit (say, support codes) on failures per source and, optionally, overall, in Redis."""

    def __init__(
        self, client: Redis, name: str, *, per_source: int, overall: int | None, window_seconds: float,
    ) -> None:
        self._client = client
        self._prefix = f"{KEY_PREFIX}{name}:"
        self._limits = (per_source,) if overall is None else (per_source, overall)
        self._window_ms = max(1, int(window_seconds * 1000))
        self._windows = client.register_script(_WINDOWS)

    def _keys(self, source: str) -> tuple[str, ...]:
        return window_keys(self._prefix, source, overall=len(self._limits) > 1)

    def _in_flight_keys(self, source: str) -> tuple[str, ...]:
        return window_keys(f"{self._prefix}in-flight:", source, overall=len(self._limits) > 1)

    async def reserve(self, source: str, max_wait: float = 0.0) -> Reservation:
        """Count an attempt of ``source`` as a failure before it is checked; raises
        :class:`RefusedByShared` (counting nothing) when no failure is left. While the windows are
        full only counting attempts still being checked (:data:`IN_FLIGHT_MS`; on every broker, many
        right codes at once from one address), waits for their verdicts up to ``max_wait`` seconds,
        as the local gate queues. Raises ``redis.RedisError`` when Redis cannot be reached."""
        keys, in_flight = self._keys(source), self._in_flight_keys(source)
        member = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while True:
            answer = await self._windows(
                keys=[*keys, *in_flight], args=[member, "reserve", self._window_ms, IN_FLIGHT_MS, *self._limits])
            if int(answer[0]):
                ms = int(answer[1])
                return Reservation(member, keys, in_flight, math.ceil(ms / 1000) if ms else None)
            busy = len(answer) > 2 and int(answer[2])
            if not busy or loop.time() + BUSY_POLL_SECONDS > deadline:
                raise RefusedByShared(whole_seconds(int(answer[1])))
            await asyncio.sleep(BUSY_POLL_SECONDS)

    async def forgive(self, reservation: Reservation) -> None:
        """The attempt was right (or never judged): it is no failure."""
        async with self._client.pipeline(transaction=True) as pipe:
            for key in (*reservation.keys, *reservation.in_flight_keys):
                pipe.zrem(key, reservation.member)
            await pipe.execute()

    async def judged_wrong(self, reservation: Reservation) -> None:
        """The attempt was wrong: it stays a failure and no longer keeps anyone waiting for it."""
        async with self._client.pipeline(transaction=True) as pipe:
            for key in reservation.in_flight_keys:
                pipe.zrem(key, reservation.member)
            await pipe.execute()


class SharedFailureLimiter:
    """A :class:`~broker.throttling.ratelimit.FailureLimiter` whose windows are in Redis, shared by every
    broker; the same methods, blocking (call them from worker threads). ``now`` and ``at`` name an
    attempt within this broker; the windows themselves run on Redis's clock."""

    def __init__(
        self, client: redis.Redis, name: str, *, per_source: int, overall: int | None, window_seconds: float,
    ) -> None:
        self._prefix = f"{KEY_PREFIX}{name}:"
        self._limits = (per_source,) if overall is None else (per_source, overall)
        self._window_ms = max(1, int(window_seconds * 1000))
        self._windows = client.register_script(_WINDOWS)
        self._client = client
        self._broker = uuid.uuid4().hex
        """Makes this broker's attempt ids (``at``) its own among every broker's."""

    def _run(self, source: str, mode: str, at: float) -> tuple[int, int]:
        keys = window_keys(self._prefix, source, overall=len(self._limits) > 1)
        answer = self._windows(keys=list(keys), args=[self._member(at), mode, self._window_ms, 0, *self._limits])
        return int(answer[0]), int(answer[1])

    def _member(self, at: float) -> str:
        return f"{self._broker}:{at!r}"

    def retry_after(self, source: str, now: float) -> int | None:
        """Whole seconds to wait (for a Retry-After header), or None if allowed."""
        _counted, ms = self._run(source, "check", now)
        return None if ms < 0 else whole_seconds(ms)

    def record_failure(self, source: str, now: float) -> None:
        """Count one failure of ``source``, whatever the windows hold."""
        self._run(source, "add", now)

    def count_attempt(self, source: str, now: float) -> int | None:
        """Check and count in one step: the wait if ``source`` is blocked (nothing counted), else None,
        with this attempt counted as a failure until :meth:`forgive` takes it back."""
        counted, ms = self._run(source, "reserve", now)
        return None if counted else whole_seconds(ms)

    def forgive(self, source: str, at: float) -> None:
        """Take back the attempt counted at ``at``: it turned out right."""
        with self._client.pipeline(transaction=True) as pipe:
            for key in window_keys(self._prefix, source, overall=len(self._limits) > 1):
                pipe.zrem(key, self._member(at))
            pipe.execute()
