"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from broker.db import Database, alembic_config
from broker.models import Base


def test_migrated_database_matches_the_models(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    database.migrate()
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    database.dispose()
    assert diff == []


def test_migrating_twice_is_harmless(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    database.migrate()
    database.migrate()
    with database.engine.connect() as connection:
        version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    database.dispose()
    head = ScriptDirectory.from_config(alembic_config(str(database.engine.url))).get_current_head()
    assert version == head
