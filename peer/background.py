"""Tasks an object starts on the side, kept until they end.

An ``asyncio`` task that nobody holds can be garbage-collected while it runs, and
an exception it raises surfaces, if at all, as "Task exception was never
retrieved" long after and without saying whose it was. :class:`BackgroundTasks`
is the one home for such work in the clients: the owner starts each task through
it, it holds the task until it ends, logs a failure once with what the task was
for, and on :meth:`BackgroundTasks.close` cancels what still runs and waits for
it. Such a task's waits must let its cancellation through: :func:`protocol.waits.wait_until_set`
is the one way the clients wait for an event with a timeout. Pure asyncio; no I/O
of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundTasks:
    """The tasks one owner (a session, a terminal) started and has not yet seen end.

    A task's exception is logged once, at error level with its traceback, under the
    name ``"<owner>: <what>"``; a cancelled task is not a failure. Tasks may be
    started after :meth:`close` too (a user may end a session while it shuts down):
    they are held and reported the same way, and the next :meth:`close` reaps them.
    """

    def __init__(self, owner: str, logger: logging.Logger | None = None) -> None:
        self._owner = owner
        self._log = logger or log
        self._running: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        """How many tasks still run."""
        return len(self._running)

    def start(self, work: Coroutine[Any, Any, T], what: str) -> asyncio.Task[T]:
        """Run ``work`` as a task named ``"<owner>: <what>"``; held until it ends."""
        task = asyncio.get_running_loop().create_task(work, name=f"{self._owner}: {what}")
        self._running.add(task)
        task.add_done_callback(self._ended)
        return task

    async def close(self) -> None:
        """Cancel every task still running and wait until each has ended (failures are logged, not raised).

        Called from one of its own tasks, that task is left to go on (it cannot wait for itself).
        """
        current = asyncio.current_task()
        while others := [task for task in self._running if task is not current]:
            await cancel_and_wait(others)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._log.error("%s failed: %s", task.get_name(), error, exc_info=error)


CANCEL_AGAIN_SECONDS = 5.0
"""How long :func:`cancel_and_wait` waits for a cancelled task to end before it cancels it again."""


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until all have ended, whatever each ended with.

    Their results and exceptions are the caller's to read (or, for tasks of a
    :class:`BackgroundTasks`, already logged); only the caller's own
    cancellation while waiting propagates. A task still running
    :data:`CANCEL_AGAIN_SECONDS` after it was cancelled is cancelled again (and
    logged): one that lost its cancellation (a wait as :func:`~protocol.waits.wait_until_set`
    says not to, in a library too) must not keep its owner, and the program,
    from ending.
    """
    waiting = set(tasks)
    for task in waiting:
        task.cancel()
    while waiting:
        _, waiting = await asyncio.wait(waiting, timeout=CANCEL_AGAIN_SECONDS)
        for task in waiting:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.warning("%s still runs %g s after it was cancelled; cancelling it again", name, CANCEL_AGAIN_SECONDS)
            task.cancel()
