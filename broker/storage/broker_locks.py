"""Named locks shared by every broker process on one database.

Several brokers may run on one database (one data directory, or one PostgreSQL). Some work
must still happen one at a time across all of them: two sealers reading the same chain head
would give two events one number, and two rounds of the webhook worker would send a
delivery twice. A :class:`BrokerLocks` lock is held by one thread of one process at a time:

* PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) taken on a connection of
  the lock's own, outside the pool, kept open between uses. When a broker dies its
  connections close and the server lets go of its locks at once.
* SQLite: a lock file beside the database file (``filelock``: ``flock`` on Linux), which
  every process on that data directory opens. The kernel lets go when the process dies.
* An in-memory SQLite database is one process's own: the in-process lock is all there is.

A threading lock per name comes first, so that the threads of one process queue on it and
not on the file or the server. The database's own constraints (``ux_audit_events_chain_seq``)
stay the last guard: a lock lost with its connection (the server restarted mid-round) can
let a second round start, whose conflicting write then fails and is retried.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from filelock import FileLock
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from starlette.concurrency import run_in_threadpool

LOCK_NAMESPACE = b"deskhand:"
"""Prefix of every lock name before it is hashed into PostgreSQL's 64-bit advisory lock key."""


def advisory_key(name: str) -> int:
    """The signed 64-bit advisory lock key of ``name`` (the same in every process)."""
    digest = hashlib.blake2b(LOCK_NAMESPACE + name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _PostgresLock:
    """One advisory lock, on a connection kept for it."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self._key = advisory_key(name)
        self._connection: Connection | None = None

    def _open(self) -> Connection:
        if self._connection is None or self._connection.closed or self._connection.invalidated:
            self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def acquire(self, wait: bool) -> bool:
        function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        try:
            got = self._open().execute(text(f"SELECT {function}(:key)"), {"key": self._key}).scalar()
        except DBAPIError:
            self.close()  # a connection the server dropped: the next acquire opens another
            raise
        return wait or bool(got)

    def release(self) -> None:
        try:
            self._open().execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except DBAPIError:
            self.close()  # the session is gone, and the server let go of its locks with it

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(DBAPIError):
                self._connection.close()
            self._connection = None


class _FileLock:
    """One lock file beside an SQLite database."""

    def __init__(self, path: Path) -> None:
        # Not thread-local: an async job takes its turn in one worker thread and gives it back in another.
        # Never a "soft" lock (a marker file): a broker killed while holding one would hold it for ever.
        # The file stays after release: unlinking a flock'ed file lets two processes lock two inodes.
        self._lock = FileLock(path, thread_local=False, fallback_to_soft=False, preserve_lock_file=True)

    def acquire(self, wait: bool) -> bool:
        with contextlib.suppress(TimeoutError):
            self._lock.acquire(timeout=-1 if wait else 0)
            return True
        return False

    def release(self) -> None:
        self._lock.release()

    def close(self) -> None:
        self._lock.release(force=True)


class _ProcessOnly:
    """No other process can reach the database (in-memory SQLite)."""

    def acquire(self, wait: bool) -> bool:
        return True

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Named:
    def __init__(self, shared: _PostgresLock | _FileLock | _ProcessOnly) -> None:
        self.local = threading.Lock()
        self.shared = shared


class BrokerLocks:
    """The named locks of the brokers sharing the database at ``url`` (a SQLAlchemy URL)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._engine: Engine | None = None
        self._directory: Path | None = None
        if parsed.get_backend_name() == "postgresql":
            self._engine = create_engine(parsed, poolclass=NullPool, pool_pre_ping=False)
        elif parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            database = Path(str(parsed.database))
            self._directory = database.with_name(database.name + ".locks")
        self._names: dict[str, _Named] = {}
        self._guard = threading.Lock()

    def _named(self, name: str) -> _Named:
        with self._guard:
            named = self._names.get(name)
            if named is None:
                shared: _PostgresLock | _FileLock | _ProcessOnly
                if self._engine is not None:
                    shared = _PostgresLock(self._engine, name)
                elif self._directory is not None:
                    self._directory.mkdir(mode=0o700, exist_ok=True)
                    shared = _FileLock(self._directory / f"{name}.lock")
                else:
                    shared = _ProcessOnly()
                named = self._names[name] = _Named(shared)
            return named

    def acquire(self, name: str, *, wait: bool = True) -> bool:
        """Take lock ``name``, waiting for it unless ``wait`` is false; whether it was taken."""
        named = self._named(name)
        if not named.local.acquire(blocking=wait):
            return False
        try:
            if named.shared.acquire(wait):
                return True
        except BaseException:
            named.local.release()
            raise
        named.local.release()
        return False

    def release(self, name: str) -> None:
        """Give lock ``name`` back (taken by :meth:`acquire`, in this or another thread)."""
        named = self._named(name)
        try:
            named.shared.release()
        finally:
            named.local.release()

    @contextlib.contextmanager
    def held(self, name: str) -> Iterator[None]:
        """Lock ``name`` for the block, waiting for it as long as it takes."""
        self.acquire(name)
        try:
            yield
        finally:
            self.release(name)

    @contextlib.asynccontextmanager
    async def turn(self, name: str) -> AsyncIterator[bool]:
        """For one round of a job that one broker runs at a time: yields whether this broker has
        the turn (lock ``name`` was free), and holds it to the block's end if so. Never waits for
        the lock; taking and giving it back happen in worker threads."""
        mine = await run_in_threadpool(self.acquire, name, wait=False)
        try:
            yield mine
        finally:
            if mine:
                await run_in_threadpool(self.release, name)

    def close(self) -> None:
        """Let go of every lock's connection or file (the broker is shutting down)."""
        with self._guard:
            for named in self._names.values():
                named.shared.close()
            self._names.clear()
        if self._engine is not None:
            self._engine.dispose()
