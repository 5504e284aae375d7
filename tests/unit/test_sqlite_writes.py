"""Writers take turns on an SQLite database: one at a time, the next woken as the previous one ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from broker.storage.db import make_engine
from broker.storage.sqlite_writes import WriteTurn


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.sqlite3'}", connections=4)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def write_after(engine: Engine, started: threading.Event, finished: list[float]) -> None:
    started.set()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (2)"))
    finished.append(time.monotonic())


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_a_second_writer_waits_for_the_first_and_goes_the_moment_it_ends(engine, ending: str) -> None:
    first = engine.connect()
    first.execute(text("SELECT count(*) FROM t"))  # reads take no turn
    first.execute(text("INSERT INTO t VALUES (1)"))
    started, finished = threading.Event(), []
    second = threading.Thread(target=write_after, args=(engine, started, finished))
    second.start()
    started.wait()
    time.sleep(0.3)
    assert not finished, "the second writer went while the first held the turn"
    ended_at = time.monotonic()
    getattr(first, ending)()
    if ending != "close":
        first.close()
    second.join(10)
    assert finished and finished[0] - ended_at < 0.1  # woken at once, not after SQLite's backoff sleeps
    with engine.connect() as check:
        rows = sorted(n for (n,) in check.execute(text("SELECT n FROM t")))
    assert rows == ([1, 2] if ending == "commit" else [2])


def test_readers_never_wait_for_a_writer(engine) -> None:
    with engine.connect() as writer:
        writer.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0  # WAL: the committed state


def test_a_writer_that_never_gets_a_turn_is_told_the_database_is_locked() -> None:
    turn = WriteTurn(timeout=0.2)
    held: dict[str, object] = {}
    turn.take(held)
    turn.take(held)  # the holder asking again is no second take
    waiting: dict[str, object] = {}
    with pytest.raises(OperationalError, match="database is locked"):
        turn.take(waiting)
    turn.give_back(held)
    turn.take(waiting)
    turn.give_back(waiting)
    turn.give_back(waiting)  # giving back twice releases nothing twice
