"""A trail written before signed heads (revision 0007: a list of checkpoints per chain) still verifies
after a real broker upgrades the database, and its sessions are then recorded in the broker chain too."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command

from broker.audit.chain import BROKER_CHAIN, GENESIS, event_hash, sign_head
from broker.audit.trail import as_chain_event, iso
from broker.keys import load_or_create_keys
from broker.storage.db import Database, alembic_config
from broker.storage.models import AuditEvent
from tests.support.broker import DB_FILE, BrokerProcess

SESSION = "0b9e3c51-8f6a-4d0e-9a51-3c2d1e0f4a77"


def write_old_trail(data_dir: Path) -> None:
    """Chains and checkpoints as the broker of revision 0007 left them after a clean stop."""
    data_dir.mkdir(mode=0o700)
    keys = load_or_create_keys(data_dir, None, None, None)
    url = f"sqlite:///{data_dir / DB_FILE}"
    database = Database(url)
    with database.engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
    database.dispose()
    start = datetime.now(UTC) - timedelta(days=3)
    chains = {BROKER_CHAIN: ["auth.login", "account.created", "auth.login"],
              SESSION: ["session.created", "code.issued", "code.redeemed", "chat.sent", "session.ended"]}
    rows, checkpoints = [], []
    for n, (chain, kinds) in enumerate(chains.items()):
        previous = GENESIS
        for seq, kind in enumerate(kinds, start=1):
            # Hashed as that broker hashed (the formula did not change), written with that revision's columns.
            event = AuditEvent(at=start + timedelta(minutes=10 * n + seq), kind=kind, actor="user:admin", source="127.0.0.1",
                               session_id=None if chain == BROKER_CHAIN else chain, ticket_id=None if chain == BROKER_CHAIN else 1,
                               data={"n": seq}, chain=chain, chain_seq=seq, prev_hash=previous)
            event.hash = previous = event_hash(as_chain_event(event).fields())
            rows.append((event.at.replace(tzinfo=None).isoformat(sep=" "), kind, event.actor, event.source, event.session_id,
                         event.ticket_id, json.dumps(event.data), chain, seq, event.prev_hash, event.hash))
            # The old broker signed every minute and at the end: an early checkpoint and the last.
            if seq in (1, len(kinds)):
                signed_at = iso(start + timedelta(minutes=10 * n + seq, seconds=30))
                head = sign_head(keys.signing_key, chain, seq, event.hash, signed_at)
                checkpoints.append((chain, seq, event.hash, signed_at, head.signature))
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        conn.executemany("INSERT INTO audit_events (at, kind, actor, source, session_id, ticket_id, data, chain, chain_seq,"
                         " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO audit_checkpoints (chain, seq, head_hash, signed_at, signature) VALUES (?, ?, ?, ?, ?)",
                         checkpoints)


def verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKHAND_")}
    return subprocess.run([sys.executable, "-m", "broker.cli", "audit", "verify", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_an_old_trail_verifies_after_the_upgrade_and_its_sessions_join_the_broker_chain(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_old_trail(data_dir)
    with BrokerProcess.start(data_dir=data_dir):
        pass  # migrates, then seals and signs the commitments the migration wrote
    result = verify(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        heads = conn.execute("SELECT chain, seq FROM audit_heads ORDER BY chain").fetchall()
        committed = conn.execute("SELECT kind, json_extract(data, '$.chain'), hash IS NOT NULL FROM audit_events "
                                 "WHERE kind LIKE 'chain.%' ORDER BY id").fetchall()
        conn.execute("DELETE FROM audit_events WHERE session_id = ?", (SESSION,))
        conn.execute("DELETE FROM audit_heads WHERE chain = ?", (SESSION,))
    assert (SESSION, 5) in heads
    assert committed == [("chain.opened", SESSION, 1), ("chain.closed", SESSION, 1)]
    deleted = verify(data_dir)
    assert deleted.returncode == 1 and f"session {SESSION}'s trail is gone" in deleted.stdout, deleted.stdout
