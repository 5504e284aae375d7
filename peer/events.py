"""Reporting session events to the broker's audit trail, from either peer.

Events are queued without waiting (callers run on the event loop or, for the
counters, in the input worker thread) and sent about once a second in one
batch. Counters become one event per second with how many happened. What the
other side will report receiving (a chat message, clipboard text, a monitor
choice) is sent at once instead, so that the trail, in the order the broker
received events, has the sending before the receipt.

Every event has an id (:class:`EventIds`). A batch that cannot be delivered
stays queued (up to :data:`MAX_PENDING`) and goes with the next one, so a broker
restart loses nothing; a batch whose answer was lost (a timeout) is sent again
as it was, and the broker stores each id once and says which it had already.
A broker that takes events more slowly than they come answers 429: they stay
queued for as long as its ``Retry-After`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from protocol.api import API_PREFIX
from protocol.recording import MAX_EVENT_BATCH_BYTES, MAX_EVENTS_PER_BATCH, PeerEvent, PeerEvents, PeerEventsStored
from protocol.waits import wait_until_set

from .broker_client import BrokerClient
from .broker_errors import BrokerRefusal

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_PENDING = 20_000
REQUEST_TIMEOUT_SECONDS = 10.0
SENT_AT_ONCE = frozenset({"chat.sent", "clipboard.sent", "monitor.selected"})
"""Kinds the other side reports receiving: sent without waiting for the next second."""


class EventIds:
    """Ids for one reporter's events: a random name of the reporter, then a counter (``"9c1f…-17"``).

    64 random bits make two reporters (a console restarted, a second tab) practically
    never share a name; the counter keeps one reporter's ids apart and in order.
    """

    def __init__(self) -> None:
        self._name = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._name}-{next(self._counter)}"


def clipboard_fields(text: str) -> dict[str, Any]:
    """What the trail keeps of clipboard text: its length and SHA-256, never the text."""
    return {"chars": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def retry_after(headers: Mapping[str, str]) -> float:
    """The seconds a 429 or 503 answer with ``headers`` asks to wait (``Retry-After``), 1 when it does not say."""
    try:
        return min(max(float(headers.get("Retry-After", "1")), 0.0), 60.0)
    except ValueError:
        return 1.0


class EventReporter:
    """One peer's event stream for one session.

    Its connections to the broker (its own, unless ``broker`` is shared) are reused by every
    batch and closed by :meth:`close`.
    """

    def __init__(
        self, broker_url: str, token: str, session_id: str, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        broker: BrokerClient | None = None,
    ) -> None:
        self._path = f"{API_PREFIX}/sessions/{session_id}/events"
        self._owns_broker = broker is None
        self._broker = broker or BrokerClient(broker_url, token)
        self._request_timeout = request_timeout
        self._ids = EventIds()
        self._pending: list[PeerEvent] = []
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._held_until = 0.0
        """Loop time before which nothing is sent: the broker asked to wait (429)."""
        self.delivered = 0
        """Events the broker stored from this reporter."""
        self.already_stored = 0
        """Events sent again (their answer was lost) that the broker had stored the first time."""

    def add(self, kind: str, **data: Any) -> None:
        """Queue one event (safe from any thread)."""
        try:
            event = self._event(kind, data)
        except ValidationError as bad:
            # A bug here must not stop the session; the broker would refuse the event anyway.
            log.warning("not reporting a malformed %s event: %s", kind, bad)
            return
        with self._lock:
            if len(self._pending) < MAX_PENDING:
                self._pending.append(event)
        if kind in SENT_AT_ONCE and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: close() already sent what it could
                self._loop.call_soon_threadsafe(self._wake.set)

    def count(self, kind: str, n: int = 1) -> None:
        """Count an occurrence; reported as ``{count, seconds}`` once per second (safe from any thread)."""
        with self._lock:
            self._counts[kind] += n

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="event-reporter")

    async def close(self, timeout: float = 10.0) -> None:
        """Stop, delivering what is queued (for at most ``timeout`` seconds).

        A request already on its way is awaited, not cancelled: it may have reached the
        broker, and sending its events again would only be answered "already stored".
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        self._take_counts()
        try:
            while self._has_work() and loop.time() < deadline:
                if not await self._flush():
                    await asyncio.sleep(0.5)
        finally:
            if self._owns_broker:
                await self._broker.aclose()

    def _event(self, kind: str, data: dict[str, Any]) -> PeerEvent:
        return PeerEvent(id=self._ids.next(), kind=kind, at=datetime.now(UTC), data=data)

    def _has_work(self) -> bool:
        with self._lock:
            return bool(self._pending or self._counts)

    def _take_counts(self) -> None:
        """Turn the counters into events, one per kind (they cover the last second)."""
        with self._lock:
            counted = list(self._counts.items())
            self._counts.clear()
        for kind, n in counted:
            event = self._event(kind, {"count": n, "seconds": FLUSH_SECONDS})
            with self._lock:
                self._pending.append(event)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_second = loop.time() + FLUSH_SECONDS
        while not self._stopping:
            await wait_until_set(self._wake, max(0.0, next_second - loop.time()))
            self._wake.clear()
            if loop.time() >= next_second:
                next_second = loop.time() + FLUSH_SECONDS
                self._take_counts()
            if not self._stopping:
                await self._flush()

    async def _flush(self) -> bool:
        """Send the oldest queued events; False when they could not be delivered (they stay queued)."""
        with self._lock:
            batch = self._pending[:MAX_EVENTS_PER_BATCH]
        if not batch:
            return True
        body = PeerEvents(events=batch).model_dump_json()
        while len(batch) > 1 and len(body.encode()) > MAX_EVENT_BATCH_BYTES:
            batch = batch[: (len(batch) + 1) // 2]  # long chat can make 500 events several MiB
            body = PeerEvents(events=batch).model_dump_json()
        loop = asyncio.get_running_loop()
        if loop.time() < self._held_until:
            return False
        try:
            reply = await self._broker.send(
                "POST", self._path, refusal=BrokerRefusal, data=body.encode(),
                headers={"Content-Type": "application/json"}, timeout=self._request_timeout,
            )
        except BrokerRefusal as unreachable:
            log.info("events not delivered yet (they go again with the same ids): %s", unreachable.message)
            return False
        if reply.status in (429, 503):
            # Faster than the broker (or this peer's share of it) takes events: they stay
            # queued, and wait as long as it says.
            self._held_until = loop.time() + retry_after(reply.headers)
            return False
        if reply.status >= 500:
            return False
        if reply.status >= 400:
            # The broker refuses these events (a bug or a policy); keeping them would block the rest.
            log.warning("the broker refused %d events: %s", len(batch), reply.refusal(BrokerRefusal).message)
        else:
            answer = PeerEventsStored.model_validate_json(reply.body)
            self.delivered += len(answer.stored)
            self.already_stored += len(answer.already_stored)
        with self._lock:
            del self._pending[: len(batch)]
        return True
