"""Failed attempts counted in Redis, so that every broker using it shares one limit.

One broker counts failures in its own memory (:class:`~broker.throttling.ratelimit.FailureLimiter`).
Two brokers behind one balancer would each allow the limit: twice the guesses. With
``DESKHAND_REDIS_URL`` set, each attempt is also *reserved* here before it is checked, in one
atomic step (a Lua script) that refuses when the source, or everyone together, has no
failures left in the window. A reservation counts as a failure until it is forgiven (the
attempt was right, or never judged), so attempts checked at once on different brokers
see each other, and the limit is never passed, however many brokers there are.

Each window is a sorted set (member: the attempt's id, score: Redis's clock in ms), so
the window slides exactly and all brokers judge it by one clock, the Redis server's.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

KEY_PREFIX = "deskhand:failures:"
"""Every key this module writes starts with this, then the limit's name."""

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
local wait = -1
local fills = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local held = redis.call('ZCARD', key)
  local limit = tonumber(ARGV[2 + i])
  if held >= limit then
    local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
    wait = math.max(wait, oldest + window - now)
  elseif held + 1 == limit then
    fills = 1
  end
end
if wait >= 0 then
  return {0, wait}
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, window)
end
return {1, fills * window}
"""
"""KEYS: the source's window, then (optional) everyone's. ARGV: the attempt's id, the window (ms), each
key's limit. Returns {1, ms of the block this attempt would start if it fails (0: none)} when
reserved, {0, ms until a failure leaves the window} when refused."""


@dataclass(frozen=True)
class Reservation:
    """An attempt counted as a failure until :meth:`SharedFailures.forgive` takes it back."""

    member: str
    keys: tuple[str, ...]
    block_seconds: int | None
    """Whole seconds of the block a failure of this attempt starts (it is the last one allowed), else None."""


class RefusedByShared(Exception):
    """No failures left for the source (or for everyone): ``retry_after`` whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"no failures left for {retry_after} s")
        self.retry_after = retry_after


class SharedFailures:
    """One limit (say, support codes) on failures per source and, optionally, overall, in Redis."""

    def __init__(
        self, client: Redis, name: str, *, per_source: int, overall: int | None, window_seconds: float,
    ) -> None:
        self._client = client
        self._prefix = f"{KEY_PREFIX}{name}:"
        self._limits = (per_source,) if overall is None else (per_source, overall)
        self._window_ms = max(1, int(window_seconds * 1000))
        self._reserve = client.register_script(_RESERVE)

    def _keys(self, source: str) -> tuple[str, ...]:
        keys = (f"{self._prefix}source:{source}",)
        return keys if len(self._limits) == 1 else (*keys, f"{self._prefix}all")

    async def reserve(self, source: str) -> Reservation:
        """Count an attempt of ``source`` as a failure before it is checked; raises
        :class:`RefusedByShared` (counting nothing) when no failure is left. Raises
        ``redis.RedisError`` when Redis cannot be reached."""
        keys = self._keys(source)
        member = uuid.uuid4().hex
        reserved, ms = await self._reserve(keys=list(keys), args=[member, self._window_ms, *self._limits])
        if not int(reserved):
            raise RefusedByShared(max(1, math.ceil(int(ms) / 1000)))
        return Reservation(member, keys, math.ceil(int(ms) / 1000) if int(ms) else None)

    async def forgive(self, reservation: Reservation) -> None:
        """The attempt was right (or never judged): it is no failure."""
        async with self._client.pipeline(transaction=True) as pipe:
            for key in reservation.keys:
                pipe.zrem(key, reservation.member)
            await pipe.execute()
