"""Broker locks (``broker.storage.broker_locks``) between processes, on an SQLite file and on PostgreSQL:
one holder at a time, and a holder killed with SIGKILL lets go at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.storage.broker_locks import BrokerLocks
from broker.storage.db import driver_url
from tests.support.database import BrokerDatabases

pytestmark = pytest.mark.both_stacks

HOLDER = """
import sys, time
from broker.storage.broker_locks import BrokerLocks
from broker.storage.db import driver_url
locks = BrokerLocks(sys.argv[1])
locks.acquire("job")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def database_url(broker_db: BrokerDatabases, tmp_path: Path) -> str:
    """A fresh database of the kind under test, as the broker's SQLAlchemy URL."""
    return driver_url(broker_db.env().get("DESKHAND_DATABASE_URL", f"sqlite:///{tmp_path / 'deskhand.sqlite3'}"))


@pytest.fixture
def locks(database_url: str) -> Iterator[BrokerLocks]:
    made = BrokerLocks(database_url)
    yield made
    made.close()


def test_a_lock_held_by_another_process_is_refused_until_that_process_is_killed(database_url: str, locks: BrokerLocks) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, database_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not locks.acquire("job", wait=False)
        assert locks.acquire("other", wait=False), "another name is another lock"
        locks.release("other")
        holder.kill()
        holder.wait()
        deadline = time.monotonic() + 2
        while not locks.acquire("job", wait=False):
            assert time.monotonic() < deadline, "the lock of a killed holder was not let go within 2 s"
            time.sleep(0.02)
        locks.release("job")
    finally:
        holder.kill()
        holder.wait()


def test_threads_and_a_second_broker_take_turns(database_url: str, locks: BrokerLocks) -> None:
    other = BrokerLocks(database_url)  # another broker process's view, as far as the database can tell
    inside: list[str] = []
    overlaps: list[str] = []

    def work(who: str, held: BrokerLocks) -> None:
        for _ in range(20):
            with held.held("sealer"):
                if inside:
                    overlaps.append(f"{who} inside with {inside}")
                inside.append(who)
                time.sleep(0.001)
                inside.remove(who)

    try:
        threads = [threading.Thread(target=work, args=(f"{name}{n}", held))
                   for name, held in (("a", locks), ("b", other)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not overlaps, overlaps[:3]
        assert locks.acquire("sealer", wait=False)
        assert not other.acquire("sealer", wait=False)
        locks.release("sealer")
    finally:
        other.close()
