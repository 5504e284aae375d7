"""Where transfer chunks wait between the sender's upload and the receiver's download.

One folder per transfer under ``<data_dir>/transfers``, one file per chunk,
written under a temporary name and renamed once its size and SHA-256 check
out, so a chunk on disk is always whole. :class:`ChunkSignals` wakes receivers
that wait for a chunk, and anyone waiting for a transfer to change.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path


class ChunkRejected(Exception):
    """An uploaded chunk does not match what was declared; the message says how."""


class TransferSpool:
    """Chunk files on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _dir(self, transfer_id: str) -> Path:
        return self.root / transfer_id

    def chunk_path(self, transfer_id: str, index: int) -> Path:
        return self._dir(transfer_id) / f"{index:08d}"

    def has(self, transfer_id: str, index: int) -> bool:
        return self.chunk_path(transfer_id, index).exists()

    async def receive(
        self, transfer_id: str, index: int, body: AsyncIterator[bytes], *, size: int, sha256: str
    ) -> None:
        """Store one chunk from ``body``; raise :class:`ChunkRejected` unless it is exactly as declared.

        The body is gathered in memory (a chunk is a few MiB) and checked and
        written in a worker thread, where hashing runs beside the event loop.
        """
        data = bytearray()
        async for piece in body:
            data += piece
            if len(data) > size:
                raise ChunkRejected(f"chunk {index} is longer than its {size} bytes")
        if len(data) != size:
            raise ChunkRejected(f"chunk {index} has {len(data)} bytes instead of {size}")
        await asyncio.to_thread(self._store, transfer_id, index, data, sha256)

    def _store(self, transfer_id: str, index: int, data: bytearray, sha256: str) -> None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ChunkRejected(f"chunk {index} does not match its SHA-256 (sent {sha256[:12]}…, got {actual[:12]}…)")
        directory = self._dir(transfer_id)
        directory.mkdir(mode=0o700, exist_ok=True)
        final = self.chunk_path(transfer_id, index)
        temporary = final.with_name(f"{final.name}.{threading.get_ident()}.part")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)

    def read(self, transfer_id: str, index: int) -> bytes:
        return self.chunk_path(transfer_id, index).read_bytes()

    def drop(self, transfer_id: str, index: int) -> None:
        self.chunk_path(transfer_id, index).unlink(missing_ok=True)

    def file_sha256(self, transfer_id: str, count: int) -> str:
        """SHA-256 of the whole file as the broker holds it (chunks in order)."""
        digest = hashlib.sha256()
        for index in range(count):
            with self.chunk_path(transfer_id, index).open("rb") as chunk:
                while block := chunk.read(1 << 20):
                    digest.update(block)
        return digest.hexdigest()

    def remove(self, transfer_id: str) -> None:
        shutil.rmtree(self._dir(transfer_id), ignore_errors=True)

    def transfer_ids(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir()]

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free


class ChunkSignals:
    """Wake-ups for long polls: a chunk arrived, or a transfer changed.

    A waiter takes :meth:`listen` *before* looking at the state it waits on, so
    a change that lands while it looks is never missed.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def listen(self, transfer_id: str) -> asyncio.Event:
        return self._events[transfer_id]

    def changed(self, transfer_id: str) -> None:
        event = self._events.pop(transfer_id, None)
        if event is not None:
            event.set()


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True if it fired."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return False
