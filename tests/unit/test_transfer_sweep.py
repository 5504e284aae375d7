"""The transfer sweep reads what is running and what the spool holds, never the transfers that ended before.

Real SQLite (a migrated database in a temporary folder) and the broker's own sweep rule
(``broker.sessions.transfers.sweep_transfers``). Its work is counted in SQLite's virtual-machine
steps (a progress handler called at every step): they grow with every row a statement
reads, so a sweep that walked the broker's history would show it however fast it ran.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path

from sqlalchemy import func, select

from broker.sessions.transfers import sweep_transfers
from broker.storage.db import Database
from broker.storage.models import AuditEvent, Transfer

AT = "2026-01-01 00:00:00.000000"


class History:
    """Sessions and transfers written straight into the database file.

    With sqlite3's own connection, which leaves foreign keys off: tickets and technicians
    play no part in the sweep, so the sessions here point at none.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def session(self, state: str) -> str:
        (session_id,) = self._write({state: 1}, transfer_state="", transfers_each=0)
        return session_id

    def transfers(self, session_id: str, state: str, count: int = 1) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.executemany(TRANSFER, [(transfer_id, session_id, state, AT) for transfer_id in ids])
        return ids

    def ended_sessions(self, sessions: int, transfers_each: int) -> None:
        """Sessions that ended, each with transfers that all finished: the broker's past."""
        self._write({"ended": sessions}, transfer_state="completed", transfers_each=transfers_each)

    def _write(self, sessions: dict[str, int], *, transfer_state: str, transfers_each: int) -> list[str]:
        session_rows = [(str(uuid.uuid4()), state, uuid.uuid4().hex, AT, AT)
                        for state, count in sessions.items() for _ in range(count)]
        finished = ("completed", "cancelled", "refused", "failed")
        transfer_rows = [(str(uuid.uuid4()), row[0], finished[n % 4] if transfer_state == "completed" else transfer_state, AT)
                         for n, row in enumerate(session_rows) for _ in range(transfers_each)]
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.executemany(SESSION, session_rows)
            conn.executemany(TRANSFER, transfer_rows)
        return [row[0] for row in session_rows]


SESSION = ("INSERT INTO support_sessions (id, ticket_id, technician_id, state, code_hash, code_expires_at, created_at)"
           " VALUES (?, 1, 1, ?, ?, ?, ?)")
TRANSFER = ("INSERT INTO transfers (id, session_id, direction, name, size, chunk_size, state, created_by, created_at)"
            " VALUES (?, ?, 'to_host', 'notes.txt', 10, 4194304, ?, 'user:1', ?)")


def swept(database: Database, held: set[str]) -> tuple[int, set[str]]:
    """One sweep of the transfers, ``held`` being what the spool holds: (SQLite steps it took, those over)."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    with database.session() as db:
        raw = db.connection().connection.driver_connection
        raw.set_progress_handler(step, 1)
        try:
            over = sweep_transfers(db, held)
        finally:
            raw.set_progress_handler(None, 1)
    return steps, over


def migrated(tmp_path: Path) -> tuple[Database, History]:
    path = tmp_path / "sweep.sqlite3"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    return database, History(path)


def test_a_sweep_costs_the_same_however_many_transfers_ended_before(tmp_path: Path) -> None:
    """Before: each sweep read the id of every transfer that ever ended (and walked every ended
    session to find running transfers), so a busy broker's sweep grew without bound."""
    database, history = migrated(tmp_path)
    (running,) = history.transfers(history.session("connected"), "accepted")
    (abandoned,) = history.transfers(history.session("ended"), "accepted")
    history.ended_sessions(sessions=10, transfers_each=5)
    (left_in_spool,) = history.transfers(history.session("ended"), "completed")
    held = {running, abandoned, left_in_spool}

    _, over = swept(database, held)
    assert over == {abandoned, left_in_spool}
    before, over = swept(database, held)
    assert over == {abandoned, left_in_spool}

    history.ended_sessions(sessions=400, transfers_each=5)
    after, over = swept(database, held)
    assert over == {abandoned, left_in_spool}
    # The same statements over the same few rows; 2,000 more finished transfers change nothing.
    assert after <= before * 1.1, (before, after)
    database.dispose()


def test_running_transfers_of_sessions_that_are_over_are_cancelled_once_and_the_rest_kept(tmp_path: Path) -> None:
    database, history = migrated(tmp_path)
    live = history.session("connected")
    (running,) = history.transfers(live, "accepted")
    (offered,) = history.transfers(live, "offered")
    (abandoned,) = history.transfers(history.session("ended"), "accepted")
    (never_joined,) = history.transfers(history.session("expired"), "offered")
    history.ended_sessions(sessions=3, transfers_each=2)

    _, over = swept(database, set())
    assert over == set()
    _, over = swept(database, {running, offered, abandoned, never_joined, "not-a-transfer-the-broker-knows"})
    assert over == {abandoned, never_joined}
    with database.session() as db:
        states = {row.id: row.state for row in db.execute(select(Transfer.id, Transfer.state))}
        cancelled = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "transfer.cancelled"))
        reasons = {t.reason for t in db.scalars(select(Transfer).where(Transfer.id.in_([abandoned, never_joined])))}
    assert states[running] == "accepted" and states[offered] == "offered"
    assert states[abandoned] == states[never_joined] == "cancelled"
    assert cancelled == 2 and reasons == {"the session ended"}
    database.dispose()


def test_a_spool_holding_more_transfers_than_one_query_may_name_is_swept_whole(tmp_path: Path) -> None:
    database, history = migrated(tmp_path)
    ended = history.transfers(history.session("ended"), "completed", 1200)
    running = history.transfers(history.session("connected"), "accepted", 3)
    _, over = swept(database, set(ended) | set(running))
    assert over == set(ended)
    database.dispose()
