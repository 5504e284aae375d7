"""Rewriting the evidence without the signing key, as an attacker with the database or a bundle would.

One real broker records a session (peer events, three recording segments, the
end), exports its signed heads and a bundle, and stops. Each test then attacks
its own copy of that data directory or bundle (the SQLite file edited with the
hash formula of ``broker/audit/chain.py``, never with the key) and checks that
``deskhand-broker audit verify`` / ``verify-bundle`` say exactly what happened,
and that a broker started on forged data neither signs it nor plays it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from broker.audit.chain import BROKER_CHAIN, event_hash, sign_head
from broker.audit.trail import as_chain_event
from broker.keys import load_or_create_keys
from broker.storage.db import Database
from broker.storage.models import AuditEvent, AuditHead
from tests.support.api import bearer, end_session, export_bundle, fetch_playback, paired_session, play_recording, start_playback
from tests.support.broker import DB_FILE, BrokerProcess
from tests.support.segments import frames_shades, put_segment, webm_segment

GRACE = "1"
"""The checkpoint interval the verifying commands are given: the trail's events are older than that."""


@dataclass(frozen=True)
class Recorded:
    data_dir: Path
    session_id: str
    bundle: Path
    heads: Path
    public_key: str
    admin_password: str


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DESKHAND_")},
           "DESKHAND_AUDIT_CHECKPOINT_SECONDS": GRACE}
    return subprocess.run([sys.executable, "-m", "broker.cli", "audit", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def verify(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("verify", "--data-dir", str(data_dir), *extra)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    root = tmp_path_factory.mktemp("trail")
    data_dir = root / "data"
    with BrokerProcess.start(data_dir=data_dir) as broker:
        admin = bearer(broker.login())
        session_id, host_token = paired_session(broker, admin)
        events = [{"id": "chat-0001", "kind": "chat.sent", "at": "2026-12-02T08:00:00Z", "data": {"text": "Is the printer on?"}},
                  {"id": "clip-0001", "kind": "clipboard.received", "at": "2026-12-02T08:00:01Z",
                   "data": {"chars": 4, "sha256": "0" * 64}}]
        posted = broker.http.post(f"/sessions/{session_id}/events", json={"events": events}, headers=bearer(host_token))
        assert posted.status_code in (200, 204), posted.text
        for index in range(3):
            stored = put_segment(broker, session_id, host_token, index, webm_segment(40 + 80 * index), offset_ms=index * 1000)
            assert stored.status_code == 204, stored.text
        assert end_session(broker, admin, session_id, "done").status_code == 200
        exported = export_bundle(broker, admin, session_id)
        assert exported.status_code == 200, exported.text
        bundle = root / "bundle.zip"
        bundle.write_bytes(exported.content)
        public_key = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))["public_key"]
        password = broker.admin_password
    heads = root / "heads.json"
    written = cli("heads", "--data-dir", str(data_dir), "--out", str(heads))
    assert written.returncode == 0, written.stdout + written.stderr
    time.sleep(float(GRACE) + 0.2)  # every event is now older than the interval the commands are given
    return Recorded(data_dir, session_id, bundle, heads, public_key, password)


@pytest.fixture
def copy(recorded: Recorded, tmp_path: Path) -> Path:
    """A copy of the recorded data directory for one attack."""
    target = tmp_path / "data"
    shutil.copytree(recorded.data_dir, target)
    return target


@pytest.fixture
def db(copy: Path) -> Iterator[Database]:
    """The copy's database, opened the way the broker opens it (an attacker with the file and the code)."""
    database = Database(f"sqlite:///{copy / DB_FILE}")
    yield database
    database.dispose()


def rehash_from(database: Database, chain: str, seq: int) -> None:
    """Recompute ``hash`` and ``prev_hash`` from event ``seq`` of ``chain`` on, as the chain formula says."""
    with database.session() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.chain_seq)).all()
        previous = rows[seq - 2].hash if seq > 1 else "0" * 64
        for row in rows[seq - 1:]:
            row.prev_hash = previous
            row.hash = event_hash(as_chain_event(row).fields())
            previous = row.hash


def append_forged(database: Database, chain: str, kind: str, **data: object) -> int:
    """Add an event with a correct hash at the chain's next number; its number."""
    with database.session() as session:
        last = session.scalars(select(AuditEvent).where(AuditEvent.chain == chain)
                               .order_by(AuditEvent.chain_seq.desc()).limit(1)).one()
        forged = AuditEvent(at=last.at, kind=kind, actor=last.actor, source=None, data=data, chain=chain,
                            session_id=None if chain == BROKER_CHAIN else chain, ticket_id=last.ticket_id,
                            chain_seq=(last.chain_seq or 0) + 1, prev_hash=last.hash)
        session.add(forged)
        session.flush()
        forged.hash = event_hash(as_chain_event(forged).fields())
        return forged.chain_seq or 0


@contextmanager
def broker_on(data_dir: Path, recorded: Recorded) -> Iterator[tuple[BrokerProcess, dict[str, str]]]:
    """A broker started on an attacked copy, and its admin's headers."""
    with BrokerProcess.start(data_dir=data_dir) as broker:
        broker.admin_password = recorded.admin_password
        yield broker, bearer(broker.login())


def sql(data_dir: Path, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """One statement on the copy's database; the rows as sqlite3 gives them (untyped values)."""
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        return conn.execute(statement, params).fetchall()


def test_the_recorded_trail_verifies_alone_and_against_its_exported_heads(recorded: Recorded) -> None:
    plain = verify(recorded.data_dir)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "The broker chain is signed to event" in plain.stdout
    against = verify(recorded.data_dir, "--heads", str(recorded.heads))
    assert against.returncode == 0 and "heads from" in against.stdout, against.stdout + against.stderr
    bundle = cli("verify-bundle", str(recorded.bundle), "--key", recorded.public_key, "--heads", str(recorded.heads))
    assert bundle.returncode == 0, bundle.stdout + bundle.stderr


def test_an_edit_rehashed_onward_with_the_signed_head_deleted_is_caught(recorded: Recorded, copy: Path, db: Database) -> None:
    (row_id, seq), = sql(copy, "SELECT id, chain_seq FROM audit_events WHERE kind = 'chat.sent'")
    with sqlite3.connect(copy / DB_FILE) as conn:
        conn.execute("UPDATE audit_events SET data = json_set(data, '$.text', 'Please type your password') WHERE id = ?",
                     (row_id,))
    rehash_from(db, recorded.session_id, int(seq))
    sql(copy, "DELETE FROM audit_heads WHERE chain = ?", recorded.session_id)
    result = verify(copy)
    assert result.returncode == 1, result.stdout
    assert f"chain {recorded.session_id}, event 1 " in result.stdout and "no signed head covers it" in result.stdout
    # With the head left in place the rewrite contradicts it instead.
    kept = copy.parent / "kept"
    shutil.copytree(recorded.data_dir, kept)
    kept_db = Database(f"sqlite:///{kept / DB_FILE}")
    with sqlite3.connect(kept / DB_FILE) as conn:
        conn.execute("UPDATE audit_events SET data = json_set(data, '$.text', 'x') WHERE id = ?", (row_id,))
    rehash_from(kept_db, recorded.session_id, int(seq))
    kept_db.dispose()
    result = verify(kept)
    assert result.returncode == 1 and "differs from what the broker signed" in result.stdout, result.stdout


def test_a_forged_append_is_caught_and_a_broker_started_on_it_neither_signs_nor_plays_it(
    recorded: Recorded, copy: Path, db: Database,
) -> None:
    seq = append_forged(db, recorded.session_id, "consent.changed", permissions=["view", "control"], given_by="user")
    result = verify(copy)
    assert result.returncode == 1, result.stdout
    assert f"event {seq} " in result.stdout and "no signed head covers it" in result.stdout
    broker_seq = append_forged(db, BROKER_CHAIN, "auth.login", username="mallory")

    with broker_on(copy, recorded) as (broker, admin):  # signing in: a new event for the broker chain
        path = f"/audit/sessions/{recorded.session_id}"
        played = start_playback(broker, admin, recorded.session_id)
        assert played.status_code == 409 and played.json()["error"] == "trail_does_not_verify", played.text
        assert export_bundle(broker, admin, recorded.session_id).status_code == 409
        report = broker.http.get(path + "/report", headers=admin).json()
        assert not report["integrity"]["ok"] and report["recording"]["segments"] == 0
        deadline = time.monotonic() + 10
        while "will not sign over it" not in broker.output_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "audit chain broker does not check out, so the broker will not sign over it" in broker.output_text()
    # Nothing was signed over the forgeries; the refusal and the new events wait, unsealed, for an operator.
    (head_seq,), = sql(copy, "SELECT seq FROM audit_heads WHERE chain = 'broker'")
    assert head_seq == broker_seq - 1
    refused = sql(copy, "SELECT hash FROM audit_events WHERE kind = 'audit.sign_refused'")
    assert refused and all(hash_ is None for (hash_,) in refused)
    result = verify(copy)
    assert result.returncode == 1 and f"chain broker, event {broker_seq} " in result.stdout, result.stdout

    # The operator removes what verify named; the broker seals what waited and signs again.
    sql(copy, "DELETE FROM audit_events WHERE chain_seq = ? AND chain = 'broker'", broker_seq)
    sql(copy, "DELETE FROM audit_events WHERE chain_seq = ? AND chain = ?", seq, recorded.session_id)
    with broker_on(copy, recorded):
        pass
    healed = verify(copy)
    assert healed.returncode == 0, healed.stdout
    assert sql(copy, "SELECT count(*) FROM audit_events WHERE kind = 'audit.sign_refused' AND hash IS NOT NULL")[0][0] >= 1


def test_a_session_deleted_whole_is_missed_by_the_broker_chain(recorded: Recorded, copy: Path) -> None:
    sql(copy, "DELETE FROM audit_events WHERE session_id = ?", recorded.session_id)
    sql(copy, "DELETE FROM audit_heads WHERE chain = ?", recorded.session_id)
    shutil.rmtree(copy / "recordings" / recorded.session_id)
    result = verify(copy)
    assert result.returncode == 1, result.stdout
    assert f"session {recorded.session_id}'s trail is gone" in result.stdout


def test_a_rewrite_by_the_key_holder_is_caught_by_heads_kept_outside(recorded: Recorded, copy: Path, db: Database) -> None:
    (row_id, seq), = sql(copy, "SELECT id, chain_seq FROM audit_events WHERE kind = 'chat.sent'")
    with sqlite3.connect(copy / DB_FILE) as conn:
        conn.execute("UPDATE audit_events SET data = json_set(data, '$.text', 'x') WHERE id = ?", (row_id,))
    rehash_from(db, recorded.session_id, int(seq))
    keys = load_or_create_keys(copy, None, None, None)
    with db.session() as session:
        row = session.get(AuditHead, recorded.session_id)
        assert row is not None
        row.head_hash = session.scalar(select(AuditEvent.hash).where(
            AuditEvent.chain == recorded.session_id, AuditEvent.chain_seq == row.seq))
        row.signature = sign_head(keys.signing_key, row.chain, row.seq, row.head_hash, row.signed_at).signature
        # The broker chain recorded the session's head at its end: the key holder re-signs that too.
        closed = session.scalars(select(AuditEvent).where(AuditEvent.kind == "chain.closed")).all()
        for event in closed:
            if event.data["chain"] == recorded.session_id:
                event.data = {**event.data, "head": session.scalar(select(AuditEvent.hash).where(
                    AuditEvent.chain == recorded.session_id, AuditEvent.chain_seq == event.data["seq"]))}
    rehash_broker_from = sql(copy, "SELECT min(chain_seq) FROM audit_events WHERE kind = 'chain.closed'")[0][0]
    rehash_from(db, BROKER_CHAIN, int(rehash_broker_from))
    with db.session() as session:
        head = session.get(AuditHead, BROKER_CHAIN)
        assert head is not None
        head.head_hash = session.scalar(select(AuditEvent.hash).where(
            AuditEvent.chain == BROKER_CHAIN, AuditEvent.chain_seq == head.seq))
        head.signature = sign_head(keys.signing_key, head.chain, head.seq, head.head_hash, head.signed_at).signature
    alone = verify(copy)
    assert alone.returncode == 0, alone.stdout  # with the key, the database alone cannot tell
    against = verify(copy, "--heads", str(recorded.heads))
    assert against.returncode == 1, against.stdout
    assert "kept outside (the chain was rewritten)" in against.stdout


# --- bundles ------------------------------------------------------------------------


def rewrite_bundle(source: Path, target: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of ``source`` with members replaced (bytes), removed (None) or added."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name not in change:
                new.writestr(name, old.read(name))
        for name, data in change.items():
            if data is not None:
                new.writestr(name, data)
    return target


def bundle_events(bundle: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in zipfile.ZipFile(bundle).read("events.jsonl").decode().splitlines()]


def rehashed(events: list[dict[str, object]]) -> bytes:
    previous = "0" * 64
    for event in events:
        event["prev"] = previous
        fields = {k: v for k, v in event.items() if k not in ("id", "hash")}
        event["hash"] = previous = event_hash(fields)
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events).encode()


def verify_bundle(bundle: Path, recorded: Recorded, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("verify-bundle", str(bundle), "--key", recorded.public_key, *extra)


@pytest.mark.parametrize("heads", ["kept", "emptied"])
def test_a_bundle_edited_and_rehashed_does_not_verify(recorded: Recorded, tmp_path: Path, heads: str) -> None:
    events = bundle_events(recorded.bundle)
    chat = next(e for e in events if e["kind"] == "chat.sent")
    chat["data"] = {"text": "Please type your password"}
    change: dict[str, bytes | None] = {"events.jsonl": rehashed(events)}
    if heads == "emptied":
        change["heads.json"] = b"[]"
    result = verify_bundle(rewrite_bundle(recorded.bundle, tmp_path / "forged.zip", change), recorded)
    assert result.returncode == 1, result.stdout
    expected = "differs from what the broker signed" if heads == "kept" else "no signed head covers it"
    assert expected in result.stdout


def test_a_bundle_cut_before_the_session_ended_does_not_verify(recorded: Recorded, tmp_path: Path) -> None:
    events = bundle_events(recorded.bundle)
    end = next(i for i, e in enumerate(events) if e["kind"] == "session.ended")
    cut = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events[:end]).encode()
    result = verify_bundle(rewrite_bundle(recorded.bundle, tmp_path / "cut.zip", {"events.jsonl": cut}), recorded)
    assert result.returncode == 1, result.stdout
    assert "the chain ends before (events were deleted)" in result.stdout
    assert "had not ended when this bundle was exported" in result.stdout


def test_a_bundle_with_other_video_or_another_session_or_an_extra_file_does_not_verify(recorded: Recorded, tmp_path: Path) -> None:
    swapped = rewrite_bundle(recorded.bundle, tmp_path / "swapped.zip", {"recording.webm": webm_segment(200)})
    result = verify_bundle(swapped, recorded)
    assert result.returncode == 1 and "recording.webm is not the recording this export signed" in result.stdout, result.stdout

    manifest = json.loads(zipfile.ZipFile(recorded.bundle).read("manifest.json"))
    manifest["session_id"] = "65b3bd95-6679-4604-be05-c826beae02b7"
    renamed = rewrite_bundle(recorded.bundle, tmp_path / "renamed.zip", {"manifest.json": json.dumps(manifest).encode()})
    result = verify_bundle(renamed, recorded)
    assert result.returncode == 1 and "not the manifest's 65b3bd95" in result.stdout, result.stdout

    extra = rewrite_bundle(recorded.bundle, tmp_path / "extra.zip", {"segments/00000007.webm": webm_segment(10)})
    result = verify_bundle(extra, recorded)
    assert result.returncode == 1 and "holds segments/00000007.webm, which nothing signed covers" in result.stdout


def test_a_bundle_checked_against_heads_kept_outside_and_a_foreign_key(recorded: Recorded, tmp_path: Path) -> None:
    other_key = base64.b64encode(os.urandom(32)).decode()
    foreign = cli("verify-bundle", str(recorded.bundle), "--key", other_key)
    assert foreign.returncode == 1 and "signature is not the broker's" in foreign.stdout, foreign.stdout
    garbage = tmp_path / "heads.json"
    garbage.write_text('{"format": "deskhand-audit-heads-v1", "heads": [{"chain": "x"}]}')
    refused = verify_bundle(recorded.bundle, recorded, "--heads", str(garbage))
    assert refused.returncode == 2 and "is not a readable heads file" in refused.stderr, refused.stderr


# --- what playback is built from -------------------------------------------------------


def test_playback_ignores_an_edited_segment_table(recorded: Recorded, copy: Path) -> None:
    """Deleting segment 1's row and moving segment 2 by 600 s changes neither verification nor playback."""
    sql(copy, 'DELETE FROM recording_segments WHERE session_id = ? AND "index" = 1', recorded.session_id)
    sql(copy, 'UPDATE recording_segments SET offset_ms = offset_ms + 600000 WHERE session_id = ? AND "index" = 2',
        recorded.session_id)
    assert verify(copy).returncode == 0
    with broker_on(copy, recorded) as (broker, admin):
        played = play_recording(broker, admin, recorded.session_id)
    assert played.status_code == 200, played.text
    shades = frames_shades(played.content)
    assert shades[-1][0] < 3.0, shades  # three seconds, not 603
    assert all(abs(shade - expected) < 10 for (_t, shade), expected in zip(shades[::2], (40, 120, 200), strict=True)), shades


def test_playback_refuses_a_segment_file_that_differs_from_its_event(recorded: Recorded, copy: Path) -> None:
    stored = copy / "recordings" / recorded.session_id / "00000001.seg"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1
    stored.write_bytes(data)
    with broker_on(copy, recorded) as (broker, admin):
        played = play_recording(broker, admin, recorded.session_id)
    assert played.status_code == 409 and "recording segment 1 was altered" in played.json()["message"], played.text


def test_a_segment_forged_into_a_live_broker_is_never_played(recorded: Recorded, copy: Path, db: Database) -> None:
    """The broker keeps what it verified for players; an event appended behind its back stops playback."""
    with broker_on(copy, recorded) as (broker, admin):
        started = start_playback(broker, admin, recorded.session_id)
        assert started.status_code == 201, started.text
        playback = started.json()["playback_id"]
        assert fetch_playback(broker, admin, recorded.session_id, playback).status_code == 200
        append_forged(db, recorded.session_id, "recording.segment", index=3, offset_ms=3000, duration_ms=1000,
                      size=10, sha256="0" * 64, stored_sha256="0" * 64)
        refused = fetch_playback(broker, admin, recorded.session_id, playback, "bytes=100-")
        assert refused.status_code == 409 and "no signed head covers it" in refused.json()["message"], refused.text


def test_heads_that_cannot_be_written_say_so_and_leave_no_partial_file(recorded: Recorded, tmp_path: Path) -> None:
    taken = tmp_path / "heads.json"
    taken.mkdir()  # the name is a folder: the file cannot take its place
    result = cli("heads", "--data-dir", str(recorded.data_dir), "--out", str(taken))
    assert result.returncode == 1 and "cannot write" in result.stderr, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heads.json"]


def bundle_with(tmp_path: Path, recorded: Recorded, name: str, change: dict[str, bytes | None]) -> Path:
    return rewrite_bundle(recorded.bundle, tmp_path / name, change)


@pytest.mark.parametrize(("what", "expected"), [
    ("not a zip", "is not a bundle"),
    ("no events", "is not a complete bundle"),
    ("garbled events", "is not a readable bundle"),
    ("events nested too deep", "is not a readable bundle"),
    ("a manifest too large", "more than a bundle's"),
    ("a version 1 bundle", "made by an older broker"),
])
def test_a_malformed_bundle_is_refused_with_what_is_wrong(recorded: Recorded, tmp_path: Path, what: str, expected: str) -> None:
    manifest = json.loads(zipfile.ZipFile(recorded.bundle).read("manifest.json"))
    if what == "not a zip":
        bundle = tmp_path / "x.zip"
        bundle.write_bytes(b"PK but not really")
    else:
        change: dict[str, bytes | None] = {
            "no events": {"events.jsonl": None},
            "garbled events": {"events.jsonl": b"{not json\n"},
            "events nested too deep": {"events.jsonl": b"[" * 100_000 + b"\n"},
            "a manifest too large": {"manifest.json": b" " * (65 * 1024)},
            "a version 1 bundle": {"manifest.json": json.dumps({**manifest, "format": "deskhand-audit-bundle-v1"}).encode(),
                                   "heads.json": None},
        }[what]
        bundle = bundle_with(tmp_path, recorded, "bad.zip", change)
    result = verify_bundle(bundle, recorded)
    assert result.returncode == 2 and expected in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
