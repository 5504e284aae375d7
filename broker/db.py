"""Engine, sessions and schema migrations.

The schema is owned by Alembic: :func:`upgrade` brings any database to the
newest revision and runs on every broker start, so an upgraded broker migrates
its own data directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

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


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout."""
    url = driver_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


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
    """The broker's handle on its database: an engine and a session factory."""

    def __init__(self, url: str, *, session_info: dict[str, object] | None = None) -> None:
        """``session_info`` is handed to every session as ``db.info`` (settings the domain code reads)."""
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, info=session_info or {})

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
        self.engine.dispose()
