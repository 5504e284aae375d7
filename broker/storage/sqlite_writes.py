"""One writer at a time on an SQLite database, queued in the process rather than in SQLite.

SQLite lets one transaction write at a time. When another holds the lock, SQLite's busy
handler *sleeps* and tries again: 1, 2, 5, 10 ... up to 100 ms between tries. Under
load the lock is free most of that time while the waiters sleep, and writes per second
collapse (the broker managed about 100 a second at 32 writers with a p95 near 1 s).

So within the process a transaction takes :class:`WriteTurn` just before its first write
statement and gives it back when its connection returns to the pool, committed or rolled
back (or is closed or invalidated). Waiters block on a lock, woken the moment it is free; SQLite's own
lock is then almost always free when asked for. Other processes (the ``deskhand-broker``
commands) still meet SQLite's busy timeout, as before.

A turn outlives the thread that took it: a request's unit of work writes in the route's
worker thread and commits in the next one. That is safe only because every holder of a
turn gets its next thread soon (``broker/storage/db_slots.py`` keeps threads spare for it).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")
"""Statements that make pysqlite open a write transaction (it begins one before each of these)."""

_HOLDS_TURN = "deskhand_write_turn"
"""Key in a pooled connection's ``info``: this connection's transaction holds the turn."""


class WriteTurn:
    """The process's turn to write to one SQLite database."""

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._timeout = timeout

    def take(self, info: dict[str, Any]) -> None:
        """Take the turn for the connection whose ``info`` this is, unless it holds it already."""
        if info.get(_HOLDS_TURN):
            return
        if not self._lock.acquire(timeout=self._timeout):
            # What SQLite itself would have said after its busy timeout.
            raise OperationalError("BEGIN", {}, Exception("database is locked (no turn to write)"))
        info[_HOLDS_TURN] = True

    def give_back(self, info: dict[str, Any]) -> None:
        """The connection's transaction ended: the next writer may go."""
        if info.pop(_HOLDS_TURN, False):
            self._lock.release()

    def install(self, engine: Engine) -> None:
        """Take turns on every write statement of ``engine``'s connections."""

        @event.listens_for(engine, "before_cursor_execute")
        def _before_write(connection: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
            if statement.lstrip()[:7].upper().startswith(WRITE_VERBS):
                self.take(connection.info)

        # Given back when the connection returns to the pool, which is *after* its commit or
        # rollback reached SQLite (the engine's "commit" event comes before): the next writer
        # then finds SQLite's lock free. A session returns its connection as its transaction ends.
        def _returned(_dbapi_connection: object, record: Any) -> None:
            if record is not None:
                self.give_back(record.info)

        def _reset(dbapi_connection: object, record: Any, _reset_state: object) -> None:
            _returned(dbapi_connection, record)

        def _invalidated(dbapi_connection: object, record: Any, _exception: object) -> None:
            _returned(dbapi_connection, record)

        event.listen(engine.pool, "checkin", _returned)
        event.listen(engine.pool, "close", _returned)
        event.listen(engine.pool, "reset", _reset)
        event.listen(engine.pool, "invalidate", _invalidated)
        event.listen(engine.pool, "soft_invalidate", _invalidated)
