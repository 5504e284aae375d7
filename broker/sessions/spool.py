"""Where transfer chunks wait between the sender's upload and the receiver's download.

Chunks are kept in memory while they fit in a budget (``DESKHAND_TRANSFER_MEMORY_BYTES``):
a receiver that keeps up then costs the broker no disk writes or reads at all,
which is what keeps a relayed transfer near the speed of a plain socket. What
does not fit goes to one folder per transfer under ``<data_dir>/transfers``,
one file per chunk, written under a temporary name and renamed once whole
(``broker.storage.blobs.LocalBlobs``).

With an object store (``DESKHAND_OBJECT_STORE_*``), every chunk goes there instead, encrypted
(AES-256-GCM under :attr:`broker.keys.BrokerKeys.chunk_key`, bound to its transfer and index),
since the sender may upload through one broker and the receiver download through another; and a
chunk is kept until its transfer ends, since the file hash may be taken by a broker that saw none
of it (see below).
The broker hashes the file in order as chunks arrive, so the hash of what it
relayed is ready when the receiver reports.

A chunk is freed once delivered. One that is asked for again (the receiver
crashed before saving it), or that did not survive a broker restart, is
reported gone; the sender, still waiting for the receiver, uploads it again.

The running hash lives in memory only (a SHA-256 in progress cannot be saved).
After a restart it starts over: when the receiver reports, the chunks still on
disk are hashed again and those already freed are uploaded again by the sender
(:meth:`TransferSpool.resume_hash`), so every completed transfer carries a hash
the broker computed over the bytes it relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.keys import NONCE_BYTES
from broker.refusals import Invalid
from broker.storage.blobs import Blobs

FOLDER = "transfers"
"""Chunks are named ``transfers/<transfer id>/<index>`` among the blobs."""


class ChunkRejected(Invalid):
    """An uploaded chunk does not match what was declared (``chunk_rejected``); the message says how."""

    def __init__(self, message: str) -> None:
        super().__init__("chunk_rejected", message)


class _FileHash:
    """The SHA-256 of a transfer's chunks in order, advanced as they arrive.

    Chunks are stored by several threads at once; one of them at a time owns
    the digest (``hashing``) and feeds it every stored chunk whose turn has
    come, so no chunk is hashed twice or skipped whatever the interleaving.
    """

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.next_index = 0
        self.stored: set[int] = set()
        """Chunks stored and waiting for their turn."""
        self.hashing = False


class TransferSpool:
    """Chunks in memory up to a budget, on disk beyond it, each kept until it is delivered.

    Memory buffers are reused from chunk to chunk: a fresh multi-MiB buffer costs
    a page fault per 4 KiB, which on a virtual machine was the broker's largest
    single cost. Once the receiver has downloaded a chunk its buffer goes back to
    the pool; should the receiver ask for it again (it crashed before saving it),
    the chunk is reported gone and the sender uploads it again.
    """

    def __init__(self, blobs: Blobs, memory_budget: int = 512 * 1024 * 1024, pool_size: int = 32,
                 *, seal_key: bytes | None = None) -> None:
        """``blobs``: where chunks beyond the memory budget go; when they are shared by several brokers
        (an object store), all chunks go there, sealed with ``seal_key``."""
        if blobs.shared and seal_key is None:
            raise ValueError("chunks in a shared store are sealed: give seal_key")
        self.blobs = blobs
        self.shared = blobs.shared
        self.memory_budget = 0 if blobs.shared else memory_budget
        self._seal = None if seal_key is None else AESGCM(seal_key)
        self._memory: dict[tuple[str, int], tuple[bytearray, int]] = {}
        self._memory_used = 0
        self._pool: list[bytearray] = []
        self._pool_size = pool_size
        self._hashes: dict[str, _FileHash] = {}
        self._delivered_early: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def chunk_name(transfer_id: str, index: int) -> str:
        """The chunk's name among the blobs."""
        return f"{FOLDER}/{transfer_id}/{index:08d}"

    def has(self, transfer_id: str, index: int) -> bool:
        return (transfer_id, index) in self._memory or self.blobs.exists(self.chunk_name(transfer_id, index))

    @property
    def memory_used(self) -> int:
        return self._memory_used

    def _buffer(self, size: int) -> bytearray:
        with self._lock:
            for i, candidate in enumerate(self._pool):
                if len(candidate) >= size:
                    return self._pool.pop(i)
        return bytearray(size)

    def _recycle(self, buffer: bytearray) -> None:
        with self._lock:
            if len(self._pool) < self._pool_size:
                self._pool.append(buffer)

    async def receive(
        self, transfer_id: str, index: int, body: AsyncIterator[bytes], *, size: int, sha256: str
    ) -> None:
        """Store one chunk from ``body``; raise :class:`ChunkRejected` unless it is exactly as declared.

        The body is gathered into a buffer of the declared size (one copy, no
        growing) and checked, and if need be written, in a worker thread, where
        hashing runs beside the event loop.
        """
        data = self._buffer(size)
        view = memoryview(data)
        received = 0
        try:
            async for piece in body:
                end = received + len(piece)
                if end > size:
                    raise ChunkRejected(f"chunk {index} is longer than its {size} bytes")
                view[received:end] = piece
                received = end
            if received != size:
                raise ChunkRejected(f"chunk {index} has {received} bytes instead of {size}")
            await asyncio.to_thread(self._store, transfer_id, index, data, size, sha256)
        except BaseException:
            view.release()
            self._recycle(data)
            raise
        view.release()

    def _store(self, transfer_id: str, index: int, data: bytearray, size: int, sha256: str) -> None:
        with memoryview(data)[:size] as chunk:
            actual = hashlib.sha256(chunk).hexdigest()
        if actual != sha256:
            raise ChunkRejected(f"chunk {index} does not match its SHA-256 (sent {sha256[:12]}…, got {actual[:12]}…)")
        with self._lock:
            in_memory = self._memory_used + size <= self.memory_budget
            if in_memory:
                previous = self._memory.pop((transfer_id, index), None)
                self._memory_used += size - (previous[1] if previous else 0)
                self._memory[(transfer_id, index)] = (data, size)
        if previous_buffer := (previous[0] if in_memory and previous else None):
            self._recycle(previous_buffer)
        if not in_memory:
            try:
                with memoryview(data)[:size] as chunk:
                    self.blobs.put(self.chunk_name(transfer_id, index), self._sealed(transfer_id, index, chunk))
            finally:
                self._recycle(data)
        # Stored first, hashed second: a chunk that came early must be readable when its turn comes.
        self._advance_hash(transfer_id, (index,))

    def _advance_hash(self, transfer_id: str, stored: Iterable[int]) -> _FileHash:
        """Note chunks just ``stored`` for the file hash, and feed it every chunk whose turn has come."""
        with self._lock:
            state = self._hashes.setdefault(transfer_id, _FileHash())
            # A chunk sent again after it was hashed was checked against the same SHA-256: nothing to do.
            state.stored.update(index for index in stored if index >= state.next_index)
            if state.hashing:
                return state  # the owner will reach them
            state.hashing = True
        while True:
            with self._lock:
                turn = state.next_index
                if turn not in state.stored:
                    state.hashing = False
                    return state
                state.stored.discard(turn)
            data = self.read(transfer_id, turn)
            if data is None:  # removed meanwhile (cancelled or swept)
                with self._lock:
                    state.hashing = False
                return state
            state.digest.update(data)
            with self._lock:
                state.next_index = turn + 1
                release = (transfer_id, turn) in self._delivered_early
                self._delivered_early.discard((transfer_id, turn))
            if release:
                self.drop(transfer_id, turn)

    def read(self, transfer_id: str, index: int) -> memoryview | bytes | None:
        """The chunk's bytes (a view into the pool while it is in memory), or None when gone."""
        with self._lock:
            held = self._memory.get((transfer_id, index))
        if held is not None:
            return memoryview(held[0])[: held[1]]
        stored = self.blobs.get(self.chunk_name(transfer_id, index))
        return None if stored is None else self._opened(transfer_id, index, stored)

    def copy_out(self, transfer_id: str, index: int) -> bytes | None:
        """The chunk's bytes as a copy of their own, for a response.

        A response is handed to the server before it is on the wire, and the
        server may keep writing from the object it was given after the chunk's
        buffer went back to the pool; a copy cannot change under it.
        """
        data = self.read(transfer_id, index)
        return None if data is None else bytes(data)

    def delivered(self, transfer_id: str, index: int) -> None:
        """The receiver has the chunk: free its memory or file (once the file hash has passed it).

        Not in a shared store: there the chunk stays until its transfer ends, for whichever broker
        takes the file hash (its transfer's removal frees it)."""
        if self.shared:
            return
        with self._lock:
            state = self._hashes.get(transfer_id)
            if state is not None and state.next_index <= index:
                self._delivered_early.add((transfer_id, index))
                return
        self.drop(transfer_id, index)

    def drop(self, transfer_id: str, index: int) -> None:
        with self._lock:
            held = self._memory.pop((transfer_id, index), None)
            if held is not None:
                self._memory_used -= held[1]
        if held is not None:
            self._recycle(held[0])
        self.blobs.delete(self.chunk_name(transfer_id, index))

    def file_sha256(self, transfer_id: str, count: int) -> str | None:
        """SHA-256 of the whole file as the broker relayed it, or None while not every chunk has passed."""
        state = self._hashes.get(transfer_id)
        if state is not None and state.next_index == count:
            return state.digest.copy().hexdigest()
        return None

    def resume_hash(self, transfer_id: str, count: int) -> list[int]:
        """Take the file hash as far as the chunks held allow; return the chunks it still needs that are gone.

        For the moment the receiver reports the whole file. Normally the hash is
        through already and nothing is read. After a broker restart it starts over:
        chunks still held (on disk) are hashed again, and those no longer held
        (delivered and freed, or lost with the memory) are returned, for the sender to
        upload again. The receiver has every chunk by then, so each of those is freed
        as soon as the hash has passed it. An empty list with no :meth:`file_sha256`
        yet means another thread is hashing the last chunks.
        """
        with self._lock:
            start = self._hashes.setdefault(transfer_id, _FileHash()).next_index
        if start >= count:
            return []
        state = self._advance_hash(transfer_id, [i for i in range(start, count) if self.has(transfer_id, i)])
        with self._lock:
            # Under the lock the hash cannot pass, and free, a chunk while it is looked for.
            gone = [i for i in range(state.next_index, count) if not self.has(transfer_id, i)]
            self._delivered_early.update((transfer_id, i) for i in gone)
        return gone

    def remove(self, transfer_id: str) -> None:
        with self._lock:
            keys = [k for k in self._memory if k[0] == transfer_id]
            buffers = []
            for key in keys:
                buffer, size = self._memory.pop(key)
                self._memory_used -= size
                buffers.append(buffer)
            self._hashes.pop(transfer_id, None)
            self._delivered_early = {k for k in self._delivered_early if k[0] != transfer_id}
        for buffer in buffers:
            self._recycle(buffer)
        self.blobs.delete_under(f"{FOLDER}/{transfer_id}")

    def transfer_ids(self) -> set[str]:
        """Transfers with anything held here: chunks in memory or among the blobs, or a hash in progress."""
        with self._lock:
            held = {k[0] for k in self._memory} | set(self._hashes)
        return held | self.blobs.children(FOLDER)

    def free_bytes(self) -> int | None:
        """Room for chunks, or None when the store does not say (an object store)."""
        return self.blobs.free_bytes()

    def _sealed(self, transfer_id: str, index: int, chunk: memoryview) -> bytes | memoryview:
        if self._seal is None:
            return chunk
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._seal.encrypt(nonce, chunk, f"{transfer_id}:{index}".encode())

    def _opened(self, transfer_id: str, index: int, stored: bytes) -> bytes | None:
        """A stored chunk's bytes; None when it does not open (altered in the store: as good as gone,
        and the sender uploads it again)."""
        if self._seal is None:
            return stored
        try:
            return self._seal.decrypt(stored[:NONCE_BYTES], stored[NONCE_BYTES:], f"{transfer_id}:{index}".encode())
        except (InvalidTag, ValueError):
            return None


class _Wakeup:
    """One key's wake-up and how many waiters hold it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.listeners = 0


class ChunkSignals:
    """Wake-ups for long polls: a chunk arrived, or a transfer changed.

    A waiter listens *before* looking at the state it waits on, so a change that
    lands while it looks is never missed::

        with signals.listen(transfer_id) as changed:
            ...look...
            await wait_until_set(changed, timeout)

    A key's wake-up lives while someone listens: the last waiter to leave, whether it
    was woken, timed out or failed (a transfer that does not exist), removes it, so
    asking about any number of ids leaves nothing behind. Used on the event loop only.
    """

    def __init__(self) -> None:
        self._wakeups: dict[str, _Wakeup] = {}
        self.elsewhere: Callable[[str], None] | None = None
        """Also called by :meth:`changed`: wakes the same key on the other brokers (``broker.cluster.wakeups``)."""

    @contextlib.contextmanager
    def listen(self, key: str) -> Iterator[asyncio.Event]:
        """The event :meth:`changed` sets for ``key``, held for the block."""
        wakeup = self._wakeups.get(key)
        if wakeup is None:
            wakeup = self._wakeups[key] = _Wakeup()
        wakeup.listeners += 1
        try:
            yield wakeup.event
        finally:
            wakeup.listeners -= 1
            # One that fired is no longer the key's (changed() took it out); a fresh one
            # there since belongs to later listeners.
            if wakeup.listeners == 0 and self._wakeups.get(key) is wakeup:
                del self._wakeups[key]

    def changed(self, key: str) -> None:
        """Wake everyone listening on ``key``, here and on the other brokers; later listeners wait for the next change."""
        self.changed_here(key)
        if self.elsewhere is not None:
            self.elsewhere(key)

    def changed_here(self, key: str) -> None:
        """:meth:`changed` on this broker only (another broker told of the change)."""
        wakeup = self._wakeups.pop(key, None)
        if wakeup is not None:
            wakeup.event.set()

    def __len__(self) -> int:
        """How many keys have someone listening."""
        return len(self._wakeups)

