"""Recordings at rest: each session's segments encrypted with its own key.

A session's data key (32 random bytes) is wrapped with AES-256-GCM under the
broker's master key and kept in the database; each segment (a file under the data
directory, or an object in the object store: ``broker.storage.blobs``) is
``nonce || AES-256-GCM(data key, segment, aad=session:index)``, so a segment
cannot be swapped with another session's or another index without failing to
decrypt. The audit chain records each segment's SHA-256 both as recorded and as
stored, so verification can check the files without decrypting them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from broker.keys import NONCE_BYTES, unwrap, wrap
from broker.storage.blobs import Blobs, LocalBlobs, StagedBlob
from broker.storage.models import SessionKey


class SegmentUnreadable(Exception):
    """A stored segment is missing or does not decrypt (it was altered)."""


JOINED_KEPT = 4
"""Joined recordings kept in memory for players seeking through them."""


LEFTOVER_SECONDS = 3600.0
"""Age beyond which a temporary upload file is a leftover: a body stalls for at most
``DESKHAND_HTTP_BODY_TIMEOUT_SECONDS`` (at most an hour) between reads."""


FOLDER = "recordings"
"""Segments are named ``recordings/<session id>/<index>.seg`` among the blobs."""


class RecordingStore:
    """Encrypted segments as blobs ``recordings/<session id>/<index>.seg``."""

    def __init__(self, data_dir: Path, master_key: bytes, blobs: Blobs | None = None) -> None:
        """Segment bodies arrive under ``data_dir/recordings/.incoming``; the segments are kept in
        ``blobs``, by default files under ``data_dir`` too."""
        self.root = data_dir / FOLDER
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.blobs: Blobs = blobs if blobs is not None else LocalBlobs(data_dir)
        self.incoming_dir = self.root / ".incoming"
        """Where segment bodies are written as they arrive, before they are checked."""
        self._master_key = master_key
        self._joined: OrderedDict[tuple[str, tuple[tuple[int, int, str], ...]], bytes] = OrderedDict()
        self._joined_lock = threading.Lock()

    def remove_leftovers(self, now: float, older_than: float = LEFTOVER_SECONDS) -> int:
        """Delete temporary files an upload left behind (a broker killed mid-upload), those last
        written more than ``older_than`` seconds before ``now`` (a Unix time): no upload in
        progress is that old, so this is safe beside a running broker. Returns how many."""
        removed = 0
        for leftover in self.incoming_dir.glob("*.tmp"):
            try:
                if leftover.stat().st_mtime < now - older_than:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished (discarded) meanwhile
        return removed + self.blobs.remove_leftovers(FOLDER, now, older_than)

    def joined(self, session_id: str, segments: tuple[tuple[int, int, str], ...], build: Callable[[], bytes]) -> bytes:
        """The joined recording of ``segments`` ((index, offset ms, stored SHA-256)), built once.

        A player asks for the recording in many byte ranges while it plays and seeks;
        decrypting and joining every segment for each of them would make an hour-long
        recording unwatchable. The last few recordings stay in memory, keyed by exactly
        the segments they hold, so a segment uploaded since is never missed.
        """
        cache_key = (session_id, segments)
        with self._joined_lock:
            if cache_key in self._joined:
                self._joined.move_to_end(cache_key)
                return self._joined[cache_key]
        data = build()
        with self._joined_lock:
            self._joined[cache_key] = data
            while len(self._joined) > JOINED_KEPT:
                self._joined.popitem(last=False)
        return data

    def data_key(self, db: Session, session_id: str) -> bytes:
        """The session's data key, created (and wrapped) on first use."""
        row = db.get(SessionKey, session_id)
        if row is not None:
            return unwrap(self._master_key, row.wrapped, session_id)
        key = AESGCM.generate_key(bit_length=256)
        db.add(SessionKey(session_id=session_id, wrapped=wrap(self._master_key, key, session_id)))
        db.flush()
        return key

    @staticmethod
    def name(session_id: str, index: int) -> str:
        """The segment's name among the blobs."""
        return f"{FOLDER}/{session_id}/{index:08d}.seg"

    def receive(self) -> IncomingSegment:
        """A temporary file for a segment's body as it arrives (see :class:`IncomingSegment`)."""
        self.incoming_dir.mkdir(mode=0o700, exist_ok=True)
        return IncomingSegment(self.incoming_dir / f"{uuid.uuid4().hex}.tmp")

    def stage(self, session_id: str, index: int, data: bytes, key: bytes) -> StagedSegment:
        """Encrypt a segment and stage it (``Blobs.stage``: a temporary file beside its place, or the
        bytes for one PUT); :meth:`StagedSegment.place` puts it in place.

        Done before the unit of work that records the segment, so encrypting and writing
        the bytes never happen inside a database transaction: only the rename (or PUT) does.
        Two uploads of one index may be staged at once (one is then refused).
        """
        nonce = os.urandom(NONCE_BYTES)
        stored = nonce + AESGCM(key).encrypt(nonce, data, _aad(session_id, index))
        return StagedSegment(self.blobs.stage(self.name(session_id, index), stored), hashlib.sha256(stored).hexdigest())

    def read_checked(self, session_id: str, index: int, key: bytes, *, stored_sha256: str, sha256: str) -> bytes:
        """A segment's plaintext, only if the stored file hashes to ``stored_sha256`` and the plaintext to ``sha256``."""
        stored = self.blobs.get(self.name(session_id, index))
        if stored is None:
            raise SegmentUnreadable(f"recording segment {index} is missing")
        if hashlib.sha256(stored).hexdigest() != stored_sha256:
            raise SegmentUnreadable(f"recording segment {index} was altered")
        try:
            plain = AESGCM(key).decrypt(stored[:NONCE_BYTES], stored[NONCE_BYTES:], _aad(session_id, index))
        except InvalidTag:
            raise SegmentUnreadable(f"recording segment {index} was altered") from None
        if hashlib.sha256(plain).hexdigest() != sha256:
            raise SegmentUnreadable(f"recording segment {index} differs from what was recorded")
        return plain

    def stored_sha256(self, session_id: str, index: int) -> str | None:
        stored = self.blobs.get(self.name(session_id, index))
        return None if stored is None else hashlib.sha256(stored).hexdigest()


class IncomingSegment:
    """A segment's body written to a temporary file as it arrives, hashed and counted on the way.

    The request holds no database session meanwhile, however slowly the body comes.
    :meth:`discard` always, once done with it (a context manager does).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = path.open("xb")

    def __enter__(self) -> IncomingSegment:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()

    def write(self, piece: bytes) -> None:
        """Append ``piece`` (a write to the page cache: quick enough for the event loop)."""
        self._file.write(piece)
        self._hash.update(piece)
        self.size += len(piece)

    @property
    def sha256(self) -> str:
        """The SHA-256 of what was written so far, in hex."""
        return self._hash.hexdigest()

    def read(self) -> bytes:
        """Everything written, once the body is complete."""
        self._file.flush()
        return self.path.read_bytes()

    def discard(self) -> None:
        """Close and remove the file (gone already is fine)."""
        with contextlib.suppress(OSError):
            self._file.close()  # its last bytes are not wanted: a full disk refusing them is no matter
        self.path.unlink(missing_ok=True)


class StagedSegment:
    """An encrypted segment staged, to be put in its place inside the recording unit of work."""

    def __init__(self, staged: StagedBlob, stored_sha256: str) -> None:
        self._staged = staged
        self.stored_sha256 = stored_sha256
        """The SHA-256 of the stored (encrypted) bytes."""

    def place(self) -> None:
        """Put the segment in its place (replacing what a failed earlier attempt left there)."""
        self._staged.place()

    def discard(self) -> None:
        """Drop it if it was not placed."""
        self._staged.discard()


def _aad(session_id: str, index: int) -> bytes:
    return f"{session_id}:{index}".encode()


def concatenate(segments: Iterable[tuple[int, bytes]]) -> bytes:
    """One WebM from standalone segments, each placed at its offset (ms); no re-encoding.

    Gaps (a host that was down) stay gaps, so the recording's timeline is the session's.
    The same segments always give the same bytes (no random segment UID, no muxing date),
    so byte ranges of separate requests fit together.
    """
    out_buffer = io.BytesIO()
    output = av.open(out_buffer, "w", format="webm", options={"fflags": "+bitexact"})
    stream = None
    last_dts = -1
    for offset_ms, data in segments:
        with av.open(io.BytesIO(data), "r") as source:
            video = source.streams.video[0]
            time_base = video.time_base
            if time_base is None:
                raise ValueError("a recording segment's video stream has no time base")
            if stream is None:
                stream = output.add_stream_from_template(video)
            # A segment starts after the one before; inside one, a frame may share its time with the
            # one ahead (a continued segment's hidden keyframe and its first shown frame).
            earliest = last_dts + 1
            for packet in source.demux(video):
                if packet.dts is None:
                    continue
                moment = max(offset_ms + int(packet.dts * time_base * 1000), earliest)
                earliest = last_dts = moment
                packet.stream = stream
                packet.time_base = MILLISECOND
                packet.pts = packet.dts = moment
                output.mux(packet)
    output.close()
    return out_buffer.getvalue()


MILLISECOND = Fraction(1, 1000)
