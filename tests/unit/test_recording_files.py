"""broker.audit.recordings: a segment's body goes to a temporary file, is staged encrypted, then placed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.audit.recordings import RecordingStore


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_an_incoming_body_is_hashed_and_counted_and_leaves_nothing_once_discarded(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, os.urandom(32))
    with store.receive() as incoming:
        for piece in (b"abc", b"", b"defg"):
            incoming.write(piece)
        assert incoming.size == 7 and incoming.sha256 == hashlib.sha256(b"abcdefg").hexdigest()
        assert incoming.read() == b"abcdefg"
        assert incoming.path.parent == store.incoming_dir
    assert files(store.root) == []


def test_a_staged_segment_is_nowhere_until_placed_then_reads_back(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, os.urandom(32))
    key = AESGCM.generate_key(bit_length=256)
    data = b"segment bytes" * 100
    staged = store.stage("s", 3, data, key)
    assert not (store.root / "s" / "00000003.seg").exists()
    other = store.stage("s", 3, b"a rival upload", key)  # the same index at once: its own file
    other.discard()
    staged.place()
    staged.discard()  # placed already: nothing to remove
    sha256 = hashlib.sha256(data).hexdigest()
    assert store.read_checked("s", 3, key, stored_sha256=staged.stored_sha256, sha256=sha256) == data
    assert files(store.root) == ["s/00000003.seg"]


def test_a_write_cut_short_leaves_no_half_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RecordingStore(tmp_path, os.urandom(32))

    def full(self: Path, _data: bytes) -> int:
        self.touch()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError):
        store.stage("s", 0, b"data", AESGCM.generate_key(bit_length=256))
    assert files(store.root) == []


def test_temporary_files_an_interrupted_upload_left_are_removed_once_old(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, os.urandom(32))
    store.incoming_dir.mkdir()
    (tmp_path / "recordings" / "s1").mkdir()
    old_body, old_staged = store.incoming_dir / "a.tmp", tmp_path / "recordings" / "s1" / "000001.b.tmp"
    fresh, kept = store.incoming_dir / "c.tmp", tmp_path / "recordings" / "s1" / "000001.seg"
    for path in (old_body, old_staged, fresh, kept):
        path.write_bytes(b"x")
    now = time.time()
    for path in (old_body, old_staged, kept):
        os.utime(path, (now - 7200, now - 7200))
    assert store.remove_leftovers(now) == 2
    assert not old_body.exists() and not old_staged.exists() and fresh.exists() and kept.exists()
