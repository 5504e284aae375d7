"""Word between the brokers sharing a Redis: publish and subscribe.

Two kinds of channel: :data:`CHANNEL`, which every broker hears (a cache to empty, a long poll
to wake), and one per broker (:func:`direct_channel`), for what is addressed to a peer
connected to that broker (``broker.cluster.rooms``). A message is a JSON object
``{"kind": ..., "from": <broker id>, ...}``; each broker calls the handlers registered for the
kind, never for its own messages (it acted already).

What a broker sends from the event loop (:meth:`BrokerBus.send`, :meth:`BrokerBus.broadcast`)
waits in one bounded queue, published in order over one connection by :meth:`BrokerBus.publish_queued`:
Redis hands a subscriber the messages of one publisher in the order they were published, so
what one peer says to another arrives in the order it said it. :meth:`BrokerBus.tell` is for
worker threads (blocking, on a connection of its own, so unordered with the queue).

Every message is signed (HMAC-SHA256 with :attr:`broker.keys.BrokerKeys.bus_key`, which Redis never
sees) and carries when it was sent: one that is not signed by a broker of the installation, or
older than :data:`SKEW_SECONDS`, is ignored. Someone with Redis can read what the brokers say to
each other (signalling: SDP and ICE candidates, never media or its keys) and keep it from
arriving, but not say anything in a broker's name.

Pub/sub reaches the brokers listening at that moment: one that was not (starting, or its
connection to Redis dropped) misses the message. So nothing that must not be lost travels only
here: a cache also runs out by itself, a long poll also wakes on its timeout, an ended session
is also found in the database, and peers whose broker lost Redis reconnect.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from redis import Redis as BlockingRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "deskhand:bus"
"""The channel every broker of an installation publishes and listens on."""

RECONNECT_SECONDS = 1.0
"""How long a broker whose connection to Redis dropped waits before it listens again."""

MESSAGE_BYTES = 2 * 1024 * 1024
"""Messages longer than this are not from a broker: ignored. (A relayed signalling message is at most
``DESKHAND_SIGNAL_MAX_MESSAGE_BYTES``, 1 MiB, before its envelope.)"""

QUEUE_LIMIT = 10_000
"""Messages waiting to be published beyond which new ones are dropped (Redis is not keeping up)."""

BATCH = 256
"""Messages published in one round trip, at most."""

SKEW_SECONDS = 30.0
"""A message sent longer ago than this (or as far ahead: the brokers' clocks differ) is ignored:
a copy replayed from Redis later changes nothing. Keep the brokers' clocks in sync (NTP)."""

MAC_CHARS = 64
"""A message starts with its HMAC-SHA256 in hex, then its JSON body."""

Handler = Callable[[dict[str, Any]], None]
"""Called with the message (a JSON object, ``kind`` and ``from`` included)."""


def direct_channel(broker_id: str) -> str:
    """The channel on which broker ``broker_id`` hears what is addressed to it alone."""
    return f"deskhand:to:{broker_id}"


class BrokerBus:
    """This broker's end of the channels: send and tell the others, :meth:`listen` for them."""

    def __init__(self, client: Redis, blocking: BlockingRedis, key: bytes) -> None:
        self._client = client
        self._blocking = blocking
        self._key = key
        self._skew_said = 0.0
        self.broker_id = uuid.uuid4().hex
        self._handlers: dict[str, list[Handler]] = {}
        self._queue: deque[tuple[str, str]] = deque()
        self._queued = asyncio.Event()
        self._dropping = False
        self.listening = asyncio.Event()
        """Set while subscribed (a test waits for it before telling)."""

    def on(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` (on the event loop) whenever another broker sends or tells ``kind``."""
        self._handlers.setdefault(kind, []).append(handler)

    def tell(self, kind: str, **fields: Any) -> bool:
        """Tell every listening broker ``kind`` (blocking: from a worker thread); False when Redis did not answer."""
        try:
            self._blocking.publish(CHANNEL, self._encode(kind, fields))
        except RedisError as exc:
            log.warning("could not tell the other brokers %r (Redis: %s)", kind, exc)
            return False
        return True

    def broadcast(self, kind: str, **fields: Any) -> None:
        """Queue ``kind`` for every listening broker (from the event loop; never waits)."""
        self._enqueue(CHANNEL, self._encode(kind, fields))

    def send(self, broker_id: str, kind: str, **fields: Any) -> None:
        """Queue ``kind`` for broker ``broker_id`` alone, after everything queued before it."""
        self._enqueue(direct_channel(broker_id), self._encode(kind, fields))

    async def publish_queued(self) -> None:
        """Forever: publish what :meth:`send` and :meth:`broadcast` queued, in order, a batch a round trip.

        A batch Redis refused is dropped (said in the log): what it carried is made good as the
        module says, and holding it would deliver it late and out of turn."""
        while True:
            await self._queued.wait()
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            if not self._queue:
                self._queued.clear()
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, data in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
            except RedisError as exc:
                log.warning("could not send %d message(s) to the other brokers (Redis: %s)", len(batch), exc)

    async def listen(self) -> None:
        """Forever: hear both channels and call the handlers; listen again after Redis comes back."""
        failing = False
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL, direct_channel(self.broker_id))
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
                    log.warning("lost the other brokers' channels (Redis: %s); trying again every %.0f s",
                                exc, RECONNECT_SECONDS)
                    failing = True
                await asyncio.sleep(RECONNECT_SECONDS)

    def _encode(self, kind: str, fields: dict[str, Any]) -> str:
        body = json.dumps({**fields, "kind": kind, "from": self.broker_id, "at": time.time()}, separators=(",", ":"))
        return self._mac(body.encode()) + body

    def _mac(self, body: bytes) -> str:
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def _verified(self, data: bytes) -> dict[str, Any] | None:
        """The message in ``data`` if a broker of the installation signed it lately, else None."""
        mac, body = data[:MAC_CHARS], data[MAC_CHARS:]
        if not hmac.compare_digest(mac, self._mac(body).encode()):
            return None
        try:
            message = json.loads(body)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        at, now = message.get("at"), time.time()
        if not isinstance(at, int | float) or abs(now - at) > SKEW_SECONDS:
            if now - self._skew_said > SKEW_SECONDS:  # a replayed flood is one line a while, not one each
                log.warning("ignored a message from broker %s sent more than %.0f s from this broker's clock "
                            "(replayed, or the brokers' clocks differ: keep them in sync with NTP)",
                            message.get("from"), SKEW_SECONDS)
                self._skew_said = now
            return None
        return message

    def _enqueue(self, channel: str, data: str) -> None:
        if len(self._queue) >= QUEUE_LIMIT:
            if not self._dropping:
                log.warning("%d messages wait for Redis; dropping new ones until it catches up", QUEUE_LIMIT)
                self._dropping = True
            return
        self._dropping = False
        self._queue.append((channel, data))
        self._queued.set()

    def _dispatch(self, data: object) -> None:
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes) or len(data) > MESSAGE_BYTES:
            return
        message = self._verified(data)
        if message is None or message.get("from") == self.broker_id:
            return
        kind = message.get("kind")
        for handler in self._handlers.get(kind, []) if isinstance(kind, str) else []:
            try:
                handler(message)
            except Exception:  # one handler's failure must not stop the listening
                log.exception("handling %r from another broker failed", kind)
