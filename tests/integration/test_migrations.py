"""The Alembic migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, inspect

from broker.storage.db import Database, alembic_config
from broker.storage.models import Base
from tests.support.database import BrokerDatabases

pytestmark = pytest.mark.both_stacks


@pytest.fixture
def database(tmp_path: Path, broker_db: BrokerDatabases) -> Iterator[Database]:
    """A fresh database (SQLite, then PostgreSQL) brought to the newest revision, as the broker does on start."""
    db = Database(broker_db.env().get("DESKHAND_DATABASE_URL", f"sqlite:///{tmp_path / 'm.sqlite3'}"))
    db.migrate()
    yield db
    db.dispose()


def schema_diff(database: Database, metadata: MetaData) -> list[object]:
    """What autogenerate would put in a new revision to get from the database to ``metadata``."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def database_url(database: Database) -> str:
    """The engine's URL with its password (``str()`` masks it)."""
    return database.engine.url.render_as_string(hide_password=False)


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url(database))).get_current_head()


def test_migrated_database_matches_the_models(database: Database) -> None:
    assert schema_diff(database, Base.metadata) == []


def test_the_comparison_would_see_a_model_change(database: Database) -> None:
    """Guards the test above: a column the migrations lack, or a changed length, is a difference."""
    changed = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["tickets"].append_column(Column("mood", String(32), nullable=True))
    changed.tables["users"].c.username.type = String(65)
    diff = [str(d) for d in schema_diff(database, changed)]
    assert any("add_column" in d and "mood" in d for d in diff), diff
    assert any("modify_type" in d and "username" in d for d in diff), diff


def test_migrating_twice_is_harmless_and_reaches_head(database: Database) -> None:
    database.migrate()
    assert current_revision(database) == head_revision(database) is not None


def test_every_migration_can_be_undone_and_redone(database: Database) -> None:
    url = database_url(database)
    command.downgrade(alembic_config(url), "base")
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(database) is None
    database.migrate()
    assert current_revision(database) == head_revision(database)
    assert schema_diff(database, Base.metadata) == []


def test_the_grant_change_counter_starts_at_zero_and_goes_with_its_revision(database: Database) -> None:
    """0012: one counter row for the grant watcher (``broker.sessions.grant_changes``), there from the start."""
    def counter() -> list[tuple[int, int]]:
        with database.engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql("SELECT id, count FROM grant_changes")]

    assert counter() == [(1, 0)]
    url = database.engine.url.render_as_string(hide_password=False)  # str() would star the password out
    command.downgrade(alembic_config(url), "0011")
    assert "grant_changes" not in inspect(database.engine).get_table_names()
    database.migrate()
    assert counter() == [(1, 0)]
