"""Word between the brokers sharing a Redis: publish and subscribe on one channel.

What a broker keeps in memory for speed must hear when another broker changes what it was
made from (the peer cache, when someone signs out there). A message is JSON
``{"kind": ..., "from": <broker id>}`` on :data:`CHANNEL`; each broker listens and calls the
handlers registered for the kind, its own messages included (harmless: it acted already).

Pub/sub reaches the brokers listening at that moment: one that was not (starting, or its
connection to Redis dropped) misses the message. So only a cache that also runs out by itself
relies on it (the peer cache's entries live 2 s); telling is best effort and never fails the
request that changed something, which is committed by then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable

from redis import Redis as BlockingRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "deskhand:bus"
"""The one channel every broker of an installation publishes and listens on."""

RECONNECT_SECONDS = 1.0
"""How long a broker whose connection to Redis dropped waits before it listens again."""

MESSAGE_BYTES = 4096
"""Messages longer than this are not from a broker: ignored."""


class BrokerBus:
    """This broker's end of the channel: :meth:`tell` the others, :meth:`listen` for them."""

    def __init__(self, client: Redis, blocking: BlockingRedis) -> None:
        self._client = client
        self._blocking = blocking
        self.broker_id = uuid.uuid4().hex
        self._handlers: dict[str, list[Callable[[], None]]] = {}
        self.listening = asyncio.Event()
        """Set while subscribed (a test waits for it before telling)."""

    def on(self, kind: str, handler: Callable[[], None]) -> None:
        """Call ``handler`` (on the event loop) whenever a broker tells ``kind``."""
        self._handlers.setdefault(kind, []).append(handler)

    def tell(self, kind: str) -> bool:
        """Tell every listening broker ``kind`` (blocking: from a worker thread); False when Redis did not answer."""
        try:
            self._blocking.publish(CHANNEL, json.dumps({"kind": kind, "from": self.broker_id}))
        except RedisError as exc:
            log.warning("could not tell the other brokers %r (Redis: %s); their caches run out by themselves", kind, exc)
            return False
        return True

    async def listen(self) -> None:
        """Forever: hear the channel and call the handlers; listen again after Redis comes back."""
        failing = False
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.listening.set()
                    if failing:
                        log.info("listening to the other brokers again")
                        failing = False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._dispatch(message.get("data"))
            except RedisError as exc:
                self.listening.clear()
                if not failing:
                    log.warning("lost the other brokers' channel (Redis: %s); trying again every %.0f s",
                                exc, RECONNECT_SECONDS)
                    failing = True
                await asyncio.sleep(RECONNECT_SECONDS)

    def _dispatch(self, data: object) -> None:
        if not isinstance(data, bytes | str) or len(data) > MESSAGE_BYTES:
            return
        try:
            message = json.loads(data)
        except ValueError:
            return
        kind = message.get("kind") if isinstance(message, dict) else None
        for handler in self._handlers.get(kind, []) if isinstance(kind, str) else []:
            try:
                handler()
            except Exception:  # one handler's failure must not stop the listening
                log.exception("handling %r from another broker failed", kind)
