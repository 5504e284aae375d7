"""broker.errors: a full disk, however it is reported, answers 507 in JSON; anything unforeseen 500 in JSON.

SQLite's "database or disk is full" is produced for real with ``PRAGMA max_page_count``
(the database may not grow), without filling any disk; the integration test
``tests/integration/test_full_disk.py`` fills a real filesystem.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from broker.errors import install_error_handlers, is_disk_full, log_round_failure

DATA_DIR = Path("/srv/deskhand")


def sqlite_full_error(tmp_path: Path) -> sqlite3.OperationalError:
    """The error SQLite raises when the database cannot grow."""
    conn = sqlite3.connect(tmp_path / "tiny.sqlite3")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("PRAGMA max_page_count = 3")
    with pytest.raises(sqlite3.OperationalError) as raised:
        for _ in range(100):
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))")
    conn.close()
    return raised.value


def sqlalchemy_full_error(tmp_path: Path) -> OperationalError:
    engine = create_engine(f"sqlite:///{tmp_path / 'tiny-sa.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x BLOB)"))
    with pytest.raises(OperationalError) as raised, engine.begin() as conn:
        conn.execute(text("PRAGMA max_page_count = 3"))
        for _ in range(100):
            conn.execute(text("INSERT INTO t VALUES (zeroblob(4000))"))
    engine.dispose()
    return raised.value


def test_what_the_operating_system_and_sqlite_say_when_the_disk_is_full(tmp_path: Path) -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    raw = sqlite_full_error(tmp_path)
    assert str(raw) == "database or disk is full" and is_disk_full(raw)
    assert is_disk_full(sqlalchemy_full_error(tmp_path))


def test_a_full_disk_is_found_under_wrapping(tmp_path: Path) -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("storing failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert is_disk_full(ExceptionGroup("several", [ValueError("x"), OSError(errno.ENOSPC, "full")]))


@pytest.mark.parametrize("error", [
    OSError(errno.EACCES, "Permission denied"), OSError("no errno"), sqlite3.OperationalError("database is locked"),
    ValueError("full"), RuntimeError("database or disk is full"),
])
def test_other_errors_are_not_a_full_disk(error: Exception) -> None:
    assert not is_disk_full(error)


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    """A client of an app with the broker's error handlers, whose ``POST /fail/<what>`` raises an error."""
    app = FastAPI()
    install_error_handlers(app, DATA_DIR)
    errors = {
        "enospc": OSError(errno.ENOSPC, "No space left on device"),
        "sqlite": sqlalchemy_full_error(tmp_path),
        "eacces": PermissionError(errno.EACCES, "Permission denied"),
        "bug": RuntimeError("a bug"),
    }

    @app.post("/fail/{what}")
    def fail(what: str) -> None:
        raise errors[what]

    # Starlette raises an unhandled error again after answering (for the server's log); not here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://broker")


@pytest.mark.parametrize("what", ["enospc", "sqlite"])
async def test_a_full_disk_answers_507_naming_the_data_directory(client: httpx.AsyncClient, what: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "broker.errors"):
        answer = await client.post(f"/fail/{what}")
    assert answer.status_code == 507 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "disk_full", "message": f"the broker's disk is full: free space in {DATA_DIR} "
                                                              "(the broker's data directory), then send this again"}
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None and "\n" not in record.getMessage()


@pytest.mark.parametrize("what", ["eacces", "bug"])
async def test_anything_else_unforeseen_answers_500_in_json(client: httpx.AsyncClient, what: str) -> None:
    answer = await client.post(f"/fail/{what}")
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "internal_error"


def test_a_background_round_stopped_by_a_full_disk_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.rounds")
    with caplog.at_level(logging.WARNING, "test.rounds"):
        log_round_failure(log, "sealing", OSError(errno.ENOSPC, "No space left on device"))
        log_round_failure(log, "sealing", RuntimeError("a bug"))
    full, other = caplog.records
    assert full.levelno == logging.WARNING and full.exc_info is None and "disk is full" in full.getMessage()
    assert other.levelno == logging.ERROR and other.exc_info is not None
