"""The sealer works through a backlog in bounded transactions, and a chain it refuses holds up no other.

Real SQLite (a migrated database in a temporary folder), the broker's own sealing code.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.audit.trail import SIGN_REFUSED, load_chains, seal_backlog, verify_loaded
from broker.storage.db import Database
from broker.storage.models import AuditEvent, AuditHead

GRACE = timedelta(seconds=60)


class CountingUnits:
    """Units of work of ``database`` that note how many events each one sealed."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.sealed_per_unit: list[int] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Session]:
        with self.database.session() as db:
            before = unsealed(db)
            yield db
            db.flush()
            self.sealed_per_unit.append(before - unsealed(db))


def unsealed(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.hash.is_(None))) or 0


def write(database: Database, session_id: str, count: int) -> None:
    with database.session() as db:
        for n in range(count):
            audit.record(db, "chat.sent", actor=audit.host_actor(session_id), session_id=session_id, n=n)


def test_a_backlog_is_sealed_in_transactions_of_at_most_a_batch(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'trail.sqlite3'}")
    database.migrate()
    key = Ed25519PrivateKey.generate()
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    for session_id in sessions:
        write(database, session_id, 900)
    units = CountingUnits(database)
    result = seal_backlog(units, key, grace=GRACE, batch=1000)
    # 2,700 events: three batches; the broker's follow-ups (each chain opened) are sealed with their batch.
    assert result.sealed >= 2700 and not result.more
    assert len(units.sealed_per_unit) == 3
    assert all(sealed <= 1000 + len(sessions) for sealed in units.sealed_per_unit)
    with database.session() as db:
        assert unsealed(db) == 0
        verdict = verify_loaded(load_chains(db), key.public_key(), None, freshness=None)
    assert verdict.ok, verdict.problems[:3]
    database.dispose()


def test_a_refused_chain_with_more_pending_than_a_batch_holds_up_no_other(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'trail.sqlite3'}")
    database.migrate()
    key = Ed25519PrivateKey.generate()
    refused, fine = str(uuid.uuid4()), str(uuid.uuid4())
    with database.session() as db:  # a head the broker never signed: it will not seal onto this chain
        db.add(AuditHead(chain=refused, seq=0, head_hash="0" * 64, signed_at="2020-01-01T00:00:00.000000Z",
                         signature="not a signature"))
    write(database, refused, 250)
    write(database, fine, 30)
    refusals: set[tuple[str, str]] = set()
    result = seal_backlog(CountingUnits(database), key, grace=GRACE, refused_before=refusals, batch=100)
    assert refused in result.refused and fine in result.signed
    with database.session() as db:
        pending = db.scalars(select(AuditEvent.session_id).where(AuditEvent.hash.is_(None))).all()
        assert set(pending) == {refused} and len(pending) == 250  # nothing lost, only not sealed
        refusal_events = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == SIGN_REFUSED))
    assert refusal_events == 1  # said once, however many batches met it
    database.dispose()
