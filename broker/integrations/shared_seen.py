"""Inbound webhook requests accepted lately, remembered in Redis for every broker.

One broker remembers the signatures it accepted in its own memory
(:class:`~broker.integrations.inbound.SeenSignatures`): a request captured on its way to
broker A and sent again to broker B would be carried out twice. With ``DESKHAND_REDIS_URL``
set, an accepted signature is a Redis key set only if absent (``SET NX``) that expires when
no copy could be accepted any more (twice the tolerance window), so the first broker to see
a request wins and every copy, on any broker, is a replay.
"""

from __future__ import annotations

from redis import Redis

KEY_PREFIX = "deskhand:inbound-seen:"


class SharedSeenSignatures:
    """:class:`~broker.integrations.inbound.SeenSignatures` for every broker, in Redis (blocking: call it
    from a worker thread). ``now`` is unused: a key's life runs on Redis's clock."""

    def __init__(self, client: Redis, window: float) -> None:
        self._client = client
        self._keep_ms = max(1, int(2 * window * 1000))

    def first_time(self, key: str, now: float) -> bool:
        """Remember ``key``; False when it was seen within the window already (by any broker)."""
        return bool(self._client.set(KEY_PREFIX + key, b"1", nx=True, px=self._keep_ms))

    def forget(self, key: str) -> None:
        """Take ``key`` back: the request it belonged to was not carried out, and may be sent again."""
        self._client.delete(KEY_PREFIX + key)
