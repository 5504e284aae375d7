"""How much database work the broker runs at once, and what waits or is turned away.

Why this exists: a request's unit of work spans several thread-pool steps (its
dependencies, the route, the commit), and between two steps it keeps its database
connection, and on SQLite perhaps the write lock, while it waits for a thread.
Unbounded, fifty requests in flight take every connection and every thread, each
waiting for what another holds: a 30 s stall, then pool timeouts, ``database is
locked`` and 500s. So every unit of work a request or a peer starts first takes a
*slot* here, without a thread and without a connection:

* at most :attr:`DatabaseBudget.slots` units of work run at once;
* the pool holds enough connections for each of them to open a second one (a
  route that also reads the sealed trail) plus :data:`BACKGROUND_CONNECTIONS` for
  the broker's own jobs (sealer, sweeps, webhooks, the grant watcher), so no
  thread ever waits for a connection;
* the thread pool has :data:`SPARE_THREADS` more threads than slots, so a unit of
  work between two steps always gets its next thread soon, whatever else runs;
* beyond that, work waits here in order (asynchronously: no thread, no connection),
  and past :attr:`DatabaseBudget.queue` waiting or :attr:`DatabaseBudget.wait_seconds`
  waited it is refused with ``503 broker_busy`` and ``Retry-After``, which clients
  can act on, rather than piling up until everything times out.

The arithmetic is in :class:`DatabaseBudget` (pure); :class:`DatabaseSlots` is the thin
asyncio part.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from broker.errors import ApiError

BACKGROUND_CONNECTIONS = 8
"""Connections kept for the broker's own jobs, which take no slot: the sealer (and a session's
end sealing at once), the expiry and SLA sweeps, webhook delivery and the grant watcher."""

SPARE_THREADS = 24
"""Threads beyond the slots: for those jobs, for work that needs no database (hashing a
password, writing a file), and so that a unit of work never waits long for its next step."""

RETRY_AFTER_SECONDS = 2
"""What a refused request is told to wait: the queue drains in well under that when it can."""


@dataclass(frozen=True)
class DatabaseBudget:
    """The sizes that follow from one setting, ``DESKHAND_DB_CONCURRENCY``."""

    slots: int
    """Units of work running at once."""
    queue: int
    """Units of work allowed to wait for a slot; one more is refused at once."""
    wait_seconds: float
    """How long one may wait for a slot before it is refused."""

    @property
    def pool_connections(self) -> int:
        """Connections the pool may hold: two per slot, plus the background jobs'."""
        return 2 * self.slots + BACKGROUND_CONNECTIONS

    @property
    def threads(self) -> int:
        """Worker threads of the event loop's thread pool."""
        return self.slots + SPARE_THREADS


def broker_busy(reason: str) -> ApiError:
    """The refusal of work the broker cannot take now (``503`` with ``Retry-After``)."""
    return ApiError(
        503, "broker_busy",
        f"the broker is busy ({reason}): try again in {RETRY_AFTER_SECONDS} s",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class Lane(enum.Enum):
    """How a unit of work gets its database slot (:meth:`DatabaseSlots.slot_for`)."""

    in_turn = "in_turn"
    """Ordinary work: waits its turn, ``503 broker_busy`` past the queue or the wait."""
    ahead = "ahead"
    """Work that holds something scarce others queue for (a code check): before all ordinary work."""
    surely = "surely"
    """Work with nobody to tell "try again" (a connected peer's audit, consent or end): never refused."""
    held = "held"
    """The request holds a slot already (its signed-in user's ``DB``): a second unit of work runs on
    the pool's second connection for that slot. Taking a second slot could wait for ever behind
    requests doing the same."""


class DatabaseSlots:
    """Slots for database work, taken in arrival order within two lanes (see the module's docstring).

    Work that holds something scarce others queue for (a code check holds one of the few
    attempt slots of its address, :mod:`broker.throttling.attempt_slots`) asks for a slot ``ahead``: it
    waits only behind other such work, so the scarce thing turns over at the speed of the
    database and not of the whole queue.
    """

    def __init__(self, budget: DatabaseBudget) -> None:
        self.budget = budget
        self._free = budget.slots
        self._ahead: deque[asyncio.Future[None]] = deque()
        self._in_turn: deque[asyncio.Future[None]] = deque()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Units of work waiting for a slot now (refusable ones)."""
        return self._waiting

    @contextlib.asynccontextmanager
    async def slot(self, *, refusable: bool = True, ahead: bool = False) -> AsyncIterator[None]:
        """Hold a slot for the block; raises the ``503`` of :func:`broker_busy` when none comes.

        ``refusable=False`` is for work that has nobody to tell "try again" (a connected peer's
        audit, consent or end): it waits its turn however long, and is not counted in the queue.
        ``ahead=True`` goes before all ordinary waiting work (see the class's docstring).
        """
        if not refusable or self._free_now():
            await self._acquire(ahead)
        else:
            if self._waiting >= self.budget.queue:
                raise broker_busy(f"{self._waiting} requests are waiting already")
            self._waiting += 1
            try:
                async with asyncio.timeout(self.budget.wait_seconds):
                    await self._acquire(ahead)
            except TimeoutError:
                raise broker_busy(f"no database slot within {self.budget.wait_seconds:g} s") from None
            finally:
                self._waiting -= 1
        try:
            yield
        finally:
            self._release()

    def slot_for(self, lane: Lane) -> contextlib.AbstractAsyncContextManager[None]:
        """The slot a unit of work of ``lane`` holds: :meth:`slot` as the lane says, none for :attr:`Lane.held`."""
        if lane is Lane.held:
            return contextlib.nullcontext()
        return self.slot(refusable=lane is not Lane.surely, ahead=lane is Lane.ahead)

    def _free_now(self) -> bool:
        return self._free > 0 and not self._ahead and not self._in_turn

    async def _acquire(self, ahead: bool) -> None:
        if self._free_now():
            self._free -= 1
            return
        lane = self._ahead if ahead else self._in_turn
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.append(granted)
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self._release()  # granted just as the wait ended (time out, client gone): pass it on
            else:
                with contextlib.suppress(ValueError):
                    lane.remove(granted)
            raise

    def _release(self) -> None:
        for lane in (self._ahead, self._in_turn):
            while lane:
                granted = lane.popleft()
                if not granted.done():
                    granted.set_result(None)
                    return
        self._free += 1
