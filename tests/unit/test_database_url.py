"""DESKHAND_DATABASE_URL as an operator writes it reaches the driver the broker installs."""

from __future__ import annotations

import pytest

from broker.storage.db import driver_url


@pytest.mark.parametrize(("given", "used"), [
    ("postgresql://u:p%40ss@db:5432/deskhand", "postgresql+psycopg://u:p%40ss@db:5432/deskhand"),
    ("postgres://u@db/deskhand?sslmode=verify-full", "postgresql+psycopg://u@db/deskhand?sslmode=verify-full"),
    ("postgresql+psycopg2://u@db/deskhand", "postgresql+psycopg2://u@db/deskhand"),
    ("sqlite:////var/lib/deskhand/deskhand.sqlite3", "sqlite:////var/lib/deskhand/deskhand.sqlite3"),
])
def test_postgresql_urls_get_psycopg_3_and_others_are_kept(given: str, used: str) -> None:
    assert driver_url(given) == used
