"""Waiting for a slot of an :class:`~broker.throttling.ratelimit.AttemptGate`, for coroutines.

The gate decides who may be checked, who waits and who is refused; this module
does the waiting: a queued attempt sleeps until an attempt of its source (or any,
for the global limit) finishes, and gives up after ``max_wait`` seconds. With a
:class:`~broker.throttling.shared_failures.SharedFailures` (``DESKHAND_REDIS_URL``), an
attempt this broker admits is also reserved there, so the limit holds across brokers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from redis.exceptions import RedisError

from broker.throttling.ratelimit import Admitted, AttemptGate, Blocked, Crowded, Queued
from broker.throttling.shared_failures import RefusedByShared, Reservation, SharedFailures

BUSY_RETRY_AFTER = 1
"""Retry-After, in seconds, for an attempt that found no slot in time: slots free in milliseconds."""


class SlotRefused(Exception):
    """No slot for this attempt: ``blocked`` (no failures left for ``retry_after`` seconds) or busy."""

    def __init__(self, retry_after: int, *, blocked: bool) -> None:
        super().__init__(f"refused for {retry_after} s ({'blocked' if blocked else 'busy'})")
        self.retry_after = retry_after
        self.blocked = blocked


class Slot:
    """An admitted attempt; say :meth:`failed` when its verdict is wrong, else leaving the block frees it."""

    def __init__(self, slots: AttemptSlots, source: str, reservation: Reservation | None = None) -> None:
        self._slots = slots
        self._source = source
        self._open = True
        self.reservation = reservation
        """This attempt's reservation in the brokers' shared count, if there is one."""
        self.wrong = False

    def failed(self) -> int | None:
        """Count this attempt as a failure and free its slot; returns the whole seconds of the
        block the failure starts, or None if it starts none."""
        if not self._open:
            return None
        self.wrong = True
        started = self._finish(failed=True)
        shared = self.reservation.block_seconds if self.reservation is not None else None
        return started if shared is None else max(started or 0, shared)

    def _finish(self, *, failed: bool) -> int | None:
        if not self._open:
            return None
        self._open = False
        return self._slots.finish(self._source, failed=failed)


class AttemptSlots:
    """An :class:`AttemptGate` for one event loop, where attempts wait (bounded) for a slot."""

    def __init__(
        self, gate: AttemptGate, max_wait: float, clock: Callable[[], float] = time.monotonic,
        shared: SharedFailures | None = None,
    ) -> None:
        self.gate = gate
        self.max_wait = max_wait
        self._clock = clock
        self.shared = shared
        self._waiters: dict[int, asyncio.Future[Admitted | Blocked]] = {}

    @contextlib.asynccontextmanager
    async def slot(self, source: str) -> AsyncIterator[Slot]:
        """Hold a slot for one attempt of ``source`` while the block runs.

        Raises :class:`SlotRefused` at once if ``source`` is blocked (here, or in the shared
        count), or when no slot freed within ``max_wait`` seconds; ``redis.RedisError`` when
        the shared count cannot be reached. Unless :meth:`Slot.failed` was called, the attempt
        counts as no failure when the block ends, however it ends.
        """
        arrived = self._clock()
        decision = self.gate.arrive(source, arrived)
        if isinstance(decision, Queued):
            decision = await self._wait(source, decision.ticket)
        if isinstance(decision, Blocked):
            raise SlotRefused(decision.retry_after, blocked=True)
        if not isinstance(decision, Admitted):
            raise SlotRefused(BUSY_RETRY_AFTER, blocked=False)
        reservation = None
        if self.shared is not None:
            try:
                reservation = await self.shared.reserve(source, max(0.0, arrived + self.max_wait - self._clock()))
            except RefusedByShared as refused:
                self.finish(source, failed=False)
                raise SlotRefused(refused.retry_after, blocked=True) from None
            except BaseException:
                self.finish(source, failed=False)
                raise
        slot = Slot(self, source, reservation)
        try:
            yield slot
        finally:
            slot._finish(failed=False)
            if reservation is not None and self.shared is not None:
                # Unreachable now, the reservation stays a failure until it leaves the window (and
                # keeps others waiting at most IN_FLIGHT_MS): an error toward refusing, never
                # toward another guess.
                with contextlib.suppress(RedisError):
                    await (self.shared.judged_wrong if slot.wrong else self.shared.forgive)(reservation)

    def finish(self, source: str, *, failed: bool) -> int | None:
        """Finish an admitted attempt and wake the waiters it decides; the block it starts, if any."""
        finished = self.gate.finish(source, self._clock(), failed=failed)
        for ticket, decision in finished.decided.items():
            self._waiters[ticket].set_result(decision)
        return finished.block_started

    async def _wait(self, source: str, ticket: int) -> Admitted | Blocked | Crowded:
        future: asyncio.Future[Admitted | Blocked] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future
        try:
            await asyncio.wait({future}, timeout=self.max_wait)
        except BaseException:
            # Cancelled (the client left): a slot given meanwhile goes to the next in line.
            if future.done() and isinstance(future.result(), Admitted):
                self.finish(source, failed=False)
            raise
        finally:
            del self._waiters[ticket]
            if not future.done():
                self.gate.abandon(source, ticket)
        return future.result() if future.done() else Crowded()
