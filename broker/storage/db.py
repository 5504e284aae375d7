"""Engine, sessions and schema migrations.

The schema is owned by Alembic: :func:`upgrade` brings any database to the
newest revision and runs on every broker start, so an upgraded broker migrates
its own data directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, Engine, Executable, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from broker.sessions.grant_changes import count_grant_changes
from broker.storage.broker_locks import BrokerLocks
from broker.storage.sqlite_writes import WriteTurn

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


POSTGRESQL_DRIVER = "postgresql+psycopg"
"""The driver behind a ``postgresql://`` URL: psycopg 3 (SQLAlchemy's own default would be psycopg2)."""


def driver_url(url: str) -> str:
    """``url`` with the driver the broker installs: ``postgresql://`` (or ``postgres://``) becomes psycopg 3's.

    An operator writes the URL as PostgreSQL documents it; a URL that names a
    driver already (``postgresql+psycopg2://``, ``sqlite://``) is kept as given.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername=POSTGRESQL_DRIVER).render_as_string(hide_password=False)
    return url


DEFAULT_CONNECTIONS = 15
"""Pool size of a :class:`Database` opened without one (the CLI's own commands): SQLAlchemy's 5 + 10."""

POOL_TIMEOUT_SECONDS = 30
"""Never reached by a broker sized by ``broker.storage.db_slots`` (no thread waits for a connection there);
a bound for anything else."""

SQLITE_BUSY_SECONDS = 30
"""How long a write waits for SQLite's lock (another process's) or for its turn (``broker.storage.sqlite_writes``)."""


def make_engine(url: str, connections: int = DEFAULT_CONNECTIONS) -> Engine:
    """Create an engine whose pool holds up to ``connections`` (opened as needed, none beyond);
    SQLite gets foreign keys, WAL, a busy timeout and writers taking turns in the process."""
    url = driver_url(url)
    pool = {"pool_size": connections, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT_SECONDS}
    if url.startswith("sqlite"):
        if make_url(url).database in (None, "", ":memory:"):
            pool = {}  # SQLAlchemy keeps an in-memory database on one connection per thread: no pool
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # DB-API objects: untyped
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        WriteTurn(timeout=SQLITE_BUSY_SECONDS).install(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every pending migration to the database behind ``engine``."""
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


class Database:
    """The broker's handle on its database: an engine, a session factory, and the named locks
    (:class:`~broker.storage.broker_locks.BrokerLocks`) of every broker process sharing it."""

    def __init__(
        self, url: str, *, session_info: dict[str, object] | None = None, connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        """``session_info`` is handed to every session as ``db.info`` (settings the domain code reads);
        the pool holds up to ``connections``."""
        self.engine = make_engine(url, connections)
        self.locks = BrokerLocks(driver_url(url))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, info=session_info or {})
        count_grant_changes(self._sessions)

    def migrate(self) -> None:
        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any exception."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.locks.close()
        self.engine.dispose()


def changed_rows(db: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE in ``db``'s transaction; how many rows it changed.

    The conditional UPDATE is how a race is judged here (a redeem, an end, a claim): the
    one that changed a row won."""
    return cast(CursorResult[Any], db.execute(statement)).rowcount
