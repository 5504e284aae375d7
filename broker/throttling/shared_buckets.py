"""Token buckets kept in Redis, so that a rate per key holds across every broker using it.

One broker keeps its buckets in memory (:class:`~broker.throttling.ratelimit.BucketsByKey`); a
peer whose requests a balancer spreads over two brokers would get each broker's rate, twice the
whole. With ``DESKHAND_REDIS_URL`` set, a peer's events are taken from one bucket in Redis: a
hash of the tokens left and when they were counted (Redis's own clock, so all brokers refill it
alike), read, refilled and taken in one Lua script, and expiring once it would be full again (a
full bucket is the same as none).

:class:`EventRates` is what the routes ask; :class:`LocalEventRates` and :class:`SharedEventRates`
are its two homes.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from redis.asyncio import Redis

from broker.throttling.ratelimit import BucketsByKey

KEY_PREFIX = "deskhand:bucket:"

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]), tonumber(held[2])
if tokens == nil or at == nil then
  tokens, at = burst, now
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
  at = now
end
if tokens < n then
  return {0, tostring((n - tokens) * 1000 / rate)}
end
tokens = tokens - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', at)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {1, '0'}
"""
"""KEYS: the bucket. ARGV: rate a second, burst, tokens to take. Returns {1, 0} when taken, else
{0, milliseconds until there are enough} (nothing taken)."""


class EventRates(Protocol):
    """Tokens per key (a peer of a session reporting events, an address downloading host builds),
    ``rate`` a second and ``burst`` at once."""

    async def take(self, key: str, n: int) -> int | None:
        """Take ``n`` tokens of ``key``'s bucket: None when taken, else whole seconds to wait (nothing taken)."""
        ...


class LocalEventRates:
    """:class:`EventRates` of a broker alone, in its memory."""

    def __init__(self, rate: float, burst: float) -> None:
        self._buckets = BucketsByKey(rate, burst)

    async def take(self, key: str, n: int) -> int | None:
        return self._buckets.take(key, n, time.monotonic())


class SharedEventRates:
    """:class:`EventRates` of every broker sharing ``client``'s Redis."""

    def __init__(self, client: Redis, name: str, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and room for one token")
        self._name = name
        self._rate = rate
        self._burst = burst
        self._take = client.register_script(_TAKE)

    async def take(self, key: str, n: int) -> int | None:
        if n > self._burst:
            raise ValueError(f"{n} tokens never fit a burst of {self._burst:g}")
        taken, wait_ms = await self._take(keys=[f"{KEY_PREFIX}{self._name}:{key}"], args=[self._rate, self._burst, n])
        if int(taken):
            return None
        return max(1, math.ceil(float(wait_ms) / 1000))

