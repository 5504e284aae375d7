"""A full disk gets clear 507 answers, leaves no partial files, and everything works once space is freed.

The broker's data directory lives on a small tmpfs the test mounts (root only; CI
runs as root), so the machine's own disk is never filled. The test fills that
filesystem to the last page, then signs in, opens a ticket, reports session
events, uploads a recording segment and a transfer chunk: each gets ``507
disk_full`` in the JSON error shape, naming the data directory, and no ``.tmp``
segment or ``.part`` chunk is left behind, while reading still works. Once the
filler is deleted every one of those requests succeeds.

SQLite writes go to its write-ahead log first, which is reused after a checkpoint
without growing: the test empties it (``wal_checkpoint(TRUNCATE)``) before filling
the disk, so that the next write has to grow a file, as it would after a busy day.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from protocol.transfers import CHUNK_SIZE
from tests.conftest import missing_dependency
from tests.support.api import bearer, create_ticket, paired_session
from tests.support.broker import BrokerProcess
from tests.support.polling import wait_until
from tests.support.segments import put_segment, webm_segment

pytestmark = pytest.mark.slow

FILESYSTEM_MIB = 64
"""Room for the database (about 1 MiB after migrations), one 4 MiB chunk and the filler."""


@contextmanager
def small_filesystem(size_mib: int) -> Iterator[Path]:
    """A tmpfs of ``size_mib`` mounted on a fresh directory for the block; skips (fails under CI) without root."""
    if os.geteuid() != 0:
        missing_dependency("filling a disk for real needs a filesystem of the test's own: run as root "
                           "(CI does) to mount a small tmpfs")
    mount_point = Path(tempfile.mkdtemp(prefix="deskhand-full-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        mount_point.rmdir()
        missing_dependency(f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
        mount_point.rmdir()


def fill(filesystem: Path) -> Path:
    """Write a file until the filesystem has no page left; returns it (delete it to free the space)."""
    filler = filesystem / "filler"
    with filler.open("wb", buffering=0) as out:
        for block in (1024 * 1024, 4096, 1):
            try:
                while True:
                    out.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def empty_write_ahead_log(broker: BrokerProcess) -> None:
    """Checkpoint SQLite's log into the database and cut it to nothing (retried while the sealer writes)."""
    wait_until(lambda: broker.sql("PRAGMA wal_checkpoint(TRUNCATE)")[0][0] == 0, "a checkpoint with no writer busy")


def assert_disk_full(response: httpx.Response, data_dir: Path) -> None:
    assert response.status_code == 507, (response.request.method, response.request.url, response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "disk_full", body
    assert f"free space in {data_dir}" in body["message"], body


def leftovers(data_dir: Path) -> list[str]:
    """Partial files: a segment or chunk written under a temporary name and never renamed."""
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.suffix in (".tmp", ".part"))


def events(*ids: str) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {"events": [{"id": i, "kind": "chat.sent", "at": now, "data": {"text": f"message {i}"}} for i in ids]}


def test_a_full_disk_answers_507_leaves_nothing_half_written_and_recovers() -> None:
    with small_filesystem(FILESYSTEM_MIB) as filesystem:
        data_dir = filesystem / "data"
        # No memory for chunks in transit: they go to disk, as they do once the memory budget is spent.
        with BrokerProcess.start({"DESKHAND_TRANSFER_MEMORY_BYTES": "0"}, data_dir=data_dir) as broker:
            admin = bearer(broker.login())
            session_id, host_token = paired_session(broker, admin)
            host = bearer(host_token)
            broker.sql("UPDATE support_sessions SET consent = ? WHERE id = ?", json.dumps(["files.send"]), session_id)
            offered = broker.http.post(f"/sessions/{session_id}/transfers", headers=admin,
                                       json={"name": "big.bin", "size": CHUNK_SIZE + 1, "direction": "to_host"})
            assert offered.status_code == 201, offered.text
            transfer_id = offered.json()["id"]
            accepted = broker.http.post(f"/sessions/{session_id}/transfers/{transfer_id}/decision", headers=host,
                                        json={"accept": True, "saved_as": "big.bin"})
            assert accepted.status_code == 200, accepted.text
            chunk = os.urandom(CHUNK_SIZE)
            segment = webm_segment(90)
            credentials = {"username": "admin", "password": broker.admin_password}

            def put_chunk() -> httpx.Response:
                return broker.http.put(f"/sessions/{session_id}/transfers/{transfer_id}/chunks/0", content=chunk,
                                       headers={**admin, "X-Chunk-SHA256": hashlib.sha256(chunk).hexdigest()})

            empty_write_ahead_log(broker)
            filler = fill(filesystem)

            assert_disk_full(broker.http.post("/auth/login", json=credentials), data_dir)
            assert_disk_full(broker.http.post("/tickets", headers=admin, json={
                "subject": "Disk full", "requester_name": "Ann", "requester_email": "ann@example.com"}), data_dir)
            assert_disk_full(broker.http.post(f"/sessions/{session_id}/events", headers=host,
                                              json=events("disk-full-1")), data_dir)
            assert_disk_full(put_segment(broker, session_id, host_token, 0, segment, offset_ms=0), data_dir)
            assert_disk_full(put_chunk(), data_dir)
            assert leftovers(data_dir) == []
            # Reading needs no space.
            assert broker.http.get("/tickets", headers=admin).status_code == 200

            filler.unlink()

            assert broker.http.post("/auth/login", json=credentials).status_code == 200
            create_ticket(broker, admin, subject="Disk freed")
            stored = broker.http.post(f"/sessions/{session_id}/events", headers=host, json=events("disk-full-1"))
            assert stored.status_code == 200 and stored.json()["stored"] == ["disk-full-1"], stored.text
            uploaded = put_segment(broker, session_id, host_token, 0, segment, offset_ms=0)
            assert uploaded.status_code == 204, uploaded.text
            sent = put_chunk()
            assert sent.status_code == 204, sent.text
            assert leftovers(data_dir) == []
        warnings = [line for line in broker.output if "the broker's disk is full" in line]
        assert len(warnings) >= 5, broker.output_text()
