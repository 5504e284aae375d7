"""The audit trail's own costs: sealing and signing as sessions write, and verifying what was sealed.

On a fresh SQLite database in a temporary folder (the embedded default), with a
new Ed25519 key:

* **a sealing round**: ``--sessions`` live sessions each wrote four events in
  the last second (a recording segment, two input counts, a chat message), as
  a busy broker's sealer finds them every second; one round checks every chain
  from its signed head, chains the events and signs each moved head, all in one
  transaction (:func:`broker.audit.trail.seal_pending`);
* **one long session read back**: an hour of a session (3,600 segment events,
  7,200 input counts, 200 chat messages) loaded and verified as an export and a
  first playback request do (chain and signed head; segment files not read), and
  a player's next range request, which verifies only what was sealed since;
* **the whole trail**: every chain loaded and verified, as ``audit verify`` does
  (again without segment files, whose hashing is disk-bound).

Run: ``.venv/bin/python -m bench.audit_trail [--sessions 50] [--rounds 20] [--write-docs]``
(``--write-docs`` replaces only this benchmark's section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from bench.report import machine_conditions, publish
from broker.audit import events as audit
from broker.audit.evidence import VerifiedRecordings
from broker.audit.trail import load_chains, seal_pending, verify_loaded
from broker.keys import BrokerKeys
from broker.storage.db import Database
from protocol.cli import number_in_range

GRACE = timedelta(seconds=60)
LONG_SESSION_SECONDS = 3600


def write_second(db: Session, session_id: str, second: int) -> None:
    """What one session reports in a busy second."""
    actor = audit.host_actor(session_id)
    audit.record(db, "recording.segment", actor=actor, session_id=session_id, index=second, sha256="a" * 64,
                 stored_sha256="b" * 64, size=48_000, offset_ms=second * 1000, duration_ms=1000, origin_ms=0)
    audit.record(db, "input.sent", actor="user:tech", session_id=session_id, count=12, seconds=1.0,
                 reported_at="2026-12-02T08:00:00+00:00", event_id=uuid.uuid4().hex)
    audit.record(db, "input.applied", actor=actor, session_id=session_id, count=12, seconds=1.0,
                 reported_at="2026-12-02T08:00:00+00:00", event_id=uuid.uuid4().hex)
    if second % 18 == 0:
        audit.record(db, "chat.sent", actor="user:tech", session_id=session_id, text="Is the printer on now?",
                     reported_at="2026-12-02T08:00:00+00:00", event_id=uuid.uuid4().hex)


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    """Wall seconds of each of ``repeat`` runs of ``action``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def measure(sessions: int, rounds: int) -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite:///{Path(folder) / 'trail.sqlite3'}")
        database.migrate()
        live = [str(uuid.uuid4()) for _ in range(sessions)]
        round_times, events_per_round = [], 0
        for second in range(rounds):
            with database.session() as db:
                for session_id in live:
                    write_second(db, session_id, second)
            with database.session() as db:
                started = time.perf_counter()
                result = seal_pending(db, key, grace=GRACE)
                db.commit()
                round_times.append(time.perf_counter() - started)
            events_per_round = result.sealed

        long_session = str(uuid.uuid4())
        for start in range(0, LONG_SESSION_SECONDS, 300):
            with database.session() as db:
                for second in range(start, start + 300):
                    write_second(db, long_session, second)
            with database.session() as db:
                seal_pending(db, key, grace=GRACE)

        def read_session() -> None:
            with database.session() as db:
                verdict = verify_loaded(load_chains(db, long_session), key.public_key(), None, freshness=None,
                                        only=long_session)
            assert verdict.ok, verdict.problems[:1]

        def read_all() -> None:
            with database.session() as db:
                verdict = verify_loaded(load_chains(db), key.public_key(), None, freshness=None)
            assert verdict.ok, verdict.problems[:1]

        with database.session() as db:
            long_events = len(load_chains(db, long_session).events[long_session])
            all_events = sum(len(e) for e in load_chains(db).events.values())
        session_times = timed(read_session, 5)
        all_times = timed(read_all, 3)

        # A player's next range request, an event having been sealed since (another auditor's playback).
        players = VerifiedRecordings()
        keys = BrokerKeys(key, b"", b"")
        with database.session() as db:
            players.segments(db, keys, long_session)

        def next_range() -> None:
            with database.session() as db:
                audit.record(db, "recording.played", actor="user:auditor", session_id=long_session,
                             recording_sha256="0" * 64, recording_bytes=2, segments=LONG_SESSION_SECONDS)
            with database.session() as db:
                seal_pending(db, key, grace=GRACE)
            with database.session() as db:
                started = time.perf_counter()
                assert len(players.segments(db, keys, long_session)) == LONG_SESSION_SECONDS
                range_times.append(time.perf_counter() - started)

        range_times: list[float] = []
        timed(next_range, 10)
        database.dispose()
    steady = round_times[1:] or round_times  # the first round also creates every chain's head
    return {
        "round_ms": 1000 * statistics.median(steady), "round_max_ms": 1000 * max(steady),
        "events_per_round": events_per_round, "long_events": long_events,
        "session_ms": 1000 * statistics.median(session_times), "all_events": all_events,
        "range_ms": 1000 * statistics.median(range_times),
        "all_s": statistics.median(all_times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=number_in_range(int, 1, 2000, "sessions"), default=50,
                        help="live sessions writing events every second (default 50)")
    parser.add_argument("--rounds", type=number_in_range(int, 2, 3600, "rounds"), default=20,
                        help="sealing rounds measured (default 20)")
    parser.add_argument("--write-docs", action="store_true", help="replace this section's figures in docs/benchmarks.md")
    args = parser.parse_args()
    f = measure(args.sessions, args.rounds)
    table = "\n".join([
        "| what | figure |",
        "|---|---|",
        f"| one sealing round: {args.sessions} chains checked, {f['events_per_round']:.0f} events chained, "
        f"{args.sessions} heads signed | {f['round_ms']:.1f} ms median, {f['round_max_ms']:.1f} ms max "
        f"({1000 * f['round_ms'] / max(1, f['events_per_round']):.0f} µs an event) |",
        f"| one hour of a session read back and verified ({f['long_events']:.0f} events), as the first playback "
        f"request and each export do | {f['session_ms']:.0f} ms |",
        f"| a player's next byte range of that hour: only the events sealed since verified "
        f"(`broker.audit.evidence.VerifiedRecordings`) | {f['range_ms']:.1f} ms |",
        f"| the whole trail loaded and verified ({f['all_events']:.0f} events, segment files not read) "
        f"| {f['all_s']:.2f} s ({f['all_events'] / f['all_s'] / 1000:.0f} k events/s) |",
    ])
    conditions = [*machine_conditions(), "database: SQLite (WAL) in a temporary folder, the broker's embedded default; "
                  f"{args.rounds} rounds, the first (which creates every head) left out"]
    publish("audit_trail", conditions, table, write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
