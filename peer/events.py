"""Reporting session events to the broker's audit trail, from either peer.

Events are queued without waiting (callers run on the event loop or, for the
counters, in the input worker thread) and sent about once a second in one
batch. Counters become one event per second with how many happened. A batch
that cannot be delivered stays queued (up to :data:`MAX_PENDING`) and goes with
the next one, so a broker restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import httpx

from protocol.api import API_PREFIX
from protocol.recording import MAX_EVENTS_PER_BATCH, PeerEvent, PeerEvents
from protocol.transport import tls_context

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_PENDING = 20_000


class EventReporter:
    """One peer's event stream for one session."""

    def __init__(self, broker_url: str, token: str, session_id: str) -> None:
        self._url = f"{broker_url.rstrip('/')}{API_PREFIX}/sessions/{session_id}/events"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._pending: list[PeerEvent] = []
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    def add(self, kind: str, **data: Any) -> None:
        """Queue one event (safe from any thread)."""
        event = PeerEvent(kind=kind, at=datetime.now(timezone.utc), data=data)
        with self._lock:
            if len(self._pending) < MAX_PENDING:
                self._pending.append(event)

    def count(self, kind: str, n: int = 1) -> None:
        """Count an occurrence; reported as ``{count, seconds}`` once per flush (safe from any thread)."""
        with self._lock:
            self._counts[kind] += n

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-reporter")

    async def close(self, timeout: float = 10.0) -> None:
        """Stop, delivering what is queued (for at most ``timeout`` seconds)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        async with httpx.AsyncClient(timeout=5, verify=tls_context()) as client:
            deadline = asyncio.get_running_loop().time() + timeout
            while self._has_work() and asyncio.get_running_loop().time() < deadline:
                if not await self._flush(client):
                    await asyncio.sleep(0.5)

    def _has_work(self) -> bool:
        with self._lock:
            return bool(self._pending or self._counts)

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=10, verify=tls_context()) as client:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await self._flush(client)

    async def _flush(self, client: httpx.AsyncClient) -> bool:
        now = datetime.now(timezone.utc)
        with self._lock:
            for kind, n in self._counts.items():
                self._pending.append(PeerEvent(kind=kind, at=now, data={"count": n, "seconds": FLUSH_SECONDS}))
            self._counts.clear()
            batch = self._pending[:MAX_EVENTS_PER_BATCH]
        if not batch:
            return True
        try:
            response = await client.post(
                self._url, content=PeerEvents(events=batch).model_dump_json(),
                headers={**self._headers, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.info("events not delivered yet: %s", exc)
            return False
        if response.status_code >= 500:
            return False
        if response.status_code >= 400:
            # The broker refuses these events (a bug or a policy); keeping them would block the rest.
            log.warning("the broker refused %d events: %s", len(batch), response.text[:200])
        else:
            self.delivered += len(batch)
        with self._lock:
            del self._pending[: len(batch)]
        return True
