"""A test broker's database, reached straight (not through the broker): SQLite or PostgreSQL alike.

Tests check what was stored and move the clock (``expires_at`` into the past) with
one statement at a time, written once for both databases::

    run_sql(url, "SELECT kind FROM audit_events WHERE session_id = ?", session_id)

Statements use SQLite's ``?`` placeholders and SQL both databases understand
(``TRUE``/``FALSE`` for booleans, times as ``'2025-01-01 00:00:00'`` text). On
PostgreSQL the placeholders become psycopg's, and JSON and time columns come back
as text, as SQLite returns them, so a check reads the same on either.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import ExitStack
from pathlib import Path

import psycopg
from psycopg.types.string import TextLoader
from sqlalchemy import make_url

from tests.support.postgres import PostgresCluster

TEXT_COLUMNS = ("json", "jsonb", "timestamp", "timestamptz")
"""PostgreSQL types read back as text, as SQLite stores them."""
_PLACEHOLDER_OR_PERCENT = re.compile(r"[?%]")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL; None for any other database."""
    parsed = make_url(url)
    return Path(parsed.database or "") if parsed.get_backend_name() == "sqlite" else None


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (any driver) as psycopg takes it: ``postgresql://``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def run_sql(url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the database at ``url`` and commit; returns the rows (none for a write)."""
    path = sqlite_path(url)
    if path is not None:
        conn = sqlite3.connect(path, timeout=30)
        try:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()
    with psycopg.connect(libpq_url(url), connect_timeout=10) as pg:
        for type_name in TEXT_COLUMNS:
            pg.adapters.register_loader(type_name, TextLoader)
        translated = _PLACEHOLDER_OR_PERCENT.sub(lambda m: "%s" if m.group() == "?" else "%%", statement)
        cursor = pg.execute(translated, params)
        return list(cursor.fetchall()) if cursor.description is not None else []


def holds_accounts(url: str) -> bool:
    """Whether the database has its schema and an account in it (a broker has run on it)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return False  # connecting would create the file
    try:
        return bool(run_sql(url, "SELECT 1 FROM users LIMIT 1"))
    except (sqlite3.Error, psycopg.errors.UndefinedTable):
        return False


class BrokerDatabases:
    """Where a test's brokers keep their data: ``"sqlite"`` (a file in each broker's data
    directory, the default) or ``"postgresql"`` (a new database of a :class:`PostgresCluster` each).

    :meth:`env` gives the settings of one more broker; the PostgreSQL databases are
    dropped when ``stack`` closes (after the brokers using them have stopped).
    """

    def __init__(self, kind: str, cluster: PostgresCluster | None, stack: ExitStack,
                 shared: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._cluster = cluster
        self._stack = stack
        self._shared = shared or {}
        """Settings of the services every broker of a cluster shares besides the database (Redis, S3)."""

    def env(self) -> dict[str, str]:
        """Settings that give a broker an empty database of this kind (none for SQLite), and the shared services."""
        if self._cluster is None:
            return dict(self._shared)
        return {**self._shared, "DESKHAND_DATABASE_URL": self._stack.enter_context(self._cluster.database())}
