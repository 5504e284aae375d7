"""The file-transfer client both peers use: offer, accept, send and receive through the broker.

Sending reads the file once, in order: each chunk's SHA-256 goes with its
upload and the whole file's SHA-256 is declared at the end. Receiving fetches
chunks a few at a time (each waits at the broker until it has arrived), writes
each at its offset, notes it and its declared SHA-256 in a
:class:`~peer.chunk_ledger.ChunkLedger`, and hashes the file once, in order, as
it goes. Should the file's hash differ from the sender's, the chunks on disk
are checked against their own hashes and the bad ones fetched again (the
broker drops its copy, the sender uploads it anew). An interrupted transfer resumes from the ledger (receiver)
or from what the broker holds (sender), moving only what is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from protocol.api import API_PREFIX
from protocol.transfers import (
    Direction,
    FileRequestAnswer,
    FileRequestCreate,
    FileRequestOut,
    TransferCancel,
    TransferComplete,
    TransferCreate,
    TransferDecision,
    TransferFinish,
    TransferOut,
    TransferState,
    chunk_count,
    chunk_span,
    transfer_version,
)

from .broker_client import BrokerClient, BrokerReply, Timeouts
from .broker_errors import BrokerRefusal
from .chunk_ledger import ChunkLedger, load_ledger, save_ledger
from .landing import LandingFolder

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressHook = Callable[[int, int], None]
"""Called with (bytes done, bytes in all): once as each run starts, before any byte moves, then as chunks move
(:class:`peer.transfer_rate.TransferRate` measures rates from these)."""

CONCURRENCY = 4
"""Chunks in flight at once, each way."""
HASH_WINDOW = 16
"""How far ahead of the in-order file hash the receiver may run (chunks kept in memory)."""
RETRY_FOR = 120.0
"""How long a broker that does not answer is retried before the transfer pauses with an error."""
POLL_SECONDS = 25.0
TIMEOUTS = Timeouts(connect=10.0, read=POLL_SECONDS + 30)
"""A chunk waits at the broker for up to :data:`POLL_SECONDS`; the read allows for that and the bytes."""
REPAIR_ROUNDS = 3
"""Times a receiver fetches the chunks that spoiled the file's hash again before giving up."""


@dataclass(frozen=True)
class Received:
    """How :meth:`TransferClient.receive` ended: the transfer's final state, and where the file is when it completed."""

    transfer: TransferOut
    path: Path | None


class TransferError(BrokerRefusal):
    """A transfer cannot go on; ``message`` is for people, ``error`` the broker's code if any."""


class TransferClient:
    """The transfer API of one session, for one peer's token.

    Its connections to the broker are its own (closed by :meth:`aclose`), unless ``broker``
    is shared: a :class:`~peer.broker_client.BrokerClient`, which is built on aiohttp for
    these chunks' sake.
    """

    def __init__(
        self, broker_url: str, token: str, session_id: str, *, concurrency: int = CONCURRENCY,
        broker: BrokerClient | None = None,
    ) -> None:
        self.session_id = session_id
        self._concurrency = concurrency
        self._base = f"{API_PREFIX}/sessions/{session_id}"
        self._owns_broker = broker is None
        self._broker = broker or BrokerClient(
            broker_url, token, timeout=TIMEOUTS, connections=2 * concurrency + 4, hint="the transfer can be resumed later",
        )

    async def aclose(self) -> None:
        """Close this client's own connections (a shared client stays open)."""
        if self._owns_broker:
            await self._broker.aclose()

    async def __aenter__(self) -> TransferClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # --- plumbing -------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, retry: bool = True, **options: Any) -> BrokerReply:
        """One call, retried through broker restarts and dropped connections for :data:`RETRY_FOR`
        (``options`` as :meth:`BrokerClient.send`)."""
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.2
        while True:
            try:
                reply = await self._broker.send(method, self._base + path, refusal=TransferError, timeout=TIMEOUTS, **options)
            except TransferError as unreachable:
                failure = unreachable
            else:
                if reply.status < 500 or reply.status == 507:
                    if reply.status >= 400:
                        raise reply.refusal(TransferError)
                    return reply
                failure = TransferError(
                    f"the broker did not answer (HTTP {reply.status}); the transfer can be resumed later", status=reply.status,
                )
            if not retry or time.monotonic() > deadline:
                raise failure
            log.info("%s %s failed (%s); retrying in %.1f s", method, path, failure.message, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _json(self, result: type[T], method: str, path: str, **options: Any) -> T:
        reply = await self._request(method, path, **options)
        return self._broker.read(reply, result, refusal=TransferError, asked=f"{method} {path}")

    # --- the API ----------------------------------------------------------------------

    async def offer(self, name: str, size: int, direction: Direction, request_id: str | None = None) -> TransferOut:
        body = TransferCreate(name=name, size=size, direction=direction, request_id=request_id)
        return await self._json(TransferOut, "POST", "/transfers", body=body)

    async def get(self, transfer_id: str) -> TransferOut:
        return await self._json(TransferOut, "GET", f"/transfers/{transfer_id}")

    async def all(self) -> list[TransferOut]:
        return await self._json(list[TransferOut], "GET", "/transfers")

    async def wait(self, transfer: TransferOut, until: Callable[[TransferOut], bool], timeout: float) -> TransferOut:
        """Long-poll ``transfer`` until ``until(state)`` holds; raise :class:`TransferError` on timeout."""
        deadline = time.monotonic() + timeout
        while not until(transfer):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransferError(f"gave up waiting for transfer {transfer.name!r} after {timeout:g} s (it is {transfer.state.value})")
            known = transfer_version(transfer)
            transfer = await self._json(
                TransferOut, "GET", f"/transfers/{transfer.id}",
                params={"wait": f"{min(POLL_SECONDS, max(remaining, 0.1)):.3f}", "known": known},
            )
        return transfer

    async def decide(self, transfer_id: str, accept: bool, *, saved_as: str | None = None, reason: str = "") -> TransferOut:
        body = TransferDecision(accept=accept, saved_as=saved_as, reason=reason)
        return await self._json(TransferOut, "POST", f"/transfers/{transfer_id}/decision", body=body)

    async def finish(self, transfer_id: str, sha256: str) -> TransferOut:
        """Declare that every chunk is uploaded and what the whole file's SHA-256 is."""
        body = TransferFinish(sha256=sha256)
        return await self._json(TransferOut, "POST", f"/transfers/{transfer_id}/finish", body=body)

    async def cancel(self, transfer_id: str, reason: str = "") -> TransferOut:
        body = TransferCancel(reason=reason)
        return await self._json(TransferOut, "POST", f"/transfers/{transfer_id}/cancel", body=body)

    async def request_file(self, path: str = "", note: str = "") -> FileRequestOut:
        body = FileRequestCreate(path=path, note=note)
        return await self._json(FileRequestOut, "POST", "/file-requests", body=body)

    async def file_requests(self) -> list[FileRequestOut]:
        return await self._json(list[FileRequestOut], "GET", "/file-requests")

    async def decline_request(self, request_id: str, reason: str) -> FileRequestOut:
        body = FileRequestAnswer(approve=False, reason=reason)
        return await self._json(FileRequestOut, "POST", f"/file-requests/{request_id}/answer", body=body)

    # --- sending ------------------------------------------------------------------------

    async def send(self, transfer: TransferOut, source: Path, progress: ProgressHook | None = None) -> TransferOut:
        """Upload what the broker lacks, declare the file's hash, and wait until the receiver is done.

        Returns the transfer in its final state (completed, failed, refused or cancelled).
        """
        total = transfer.size
        while True:
            missing = [i for i in range(transfer.chunk_count) if i not in set(transfer.chunks_at_broker)]
            file_sha256 = await self.upload_chunks(transfer, source, set(missing), progress)
            try:
                transfer = await self.finish(transfer.id, file_sha256)
            except TransferError as error:
                if error.error != "transfer_over":
                    raise
                # The receiver finished (or someone cancelled) while chunks were re-sent.
                transfer = await self.get(transfer.id)
            # Until the receiver completes, it may hand chunks back (they failed their hash there).
            transfer = await self.wait(
                transfer, lambda t: t.state.over or len(t.chunks_at_broker) < t.chunk_count, timeout=24 * 3600
            )
            if transfer.state.over:
                if progress is not None and transfer.state is TransferState.completed:
                    progress(total, total)
                return transfer

    async def upload_chunks(
        self, transfer: TransferOut, source: Path, wanted: set[int], progress: ProgressHook | None = None
    ) -> str:
        """Upload the chunks in ``wanted`` (reading the whole file for its hash); return the file's SHA-256."""
        size, chunk_size = transfer.size, transfer.chunk_size
        file_digest = hashlib.sha256()
        # A few buffers, reused: a fresh multi-MiB buffer per chunk costs a page fault per 4 KiB.
        buffers = [bytearray(min(chunk_size, size)) for _ in range(self._concurrency)] if size else []
        free: asyncio.Queue[bytearray] = asyncio.Queue()
        for buffer in buffers:
            free.put_nowait(buffer)
        done = [size - sum(chunk_span(i, size, chunk_size)[1] for i in wanted)]
        if progress is not None and wanted:
            progress(done[0], size)  # the run's starting point: a rate needs one, even for a one-chunk file
        tasks: list[asyncio.Task[None]] = []

        async def put(index: int, buffer: bytearray, length: int, chunk_sha256: str) -> None:
            try:
                with memoryview(buffer)[:length] as data:
                    await self._request(
                        "PUT", f"/transfers/{transfer.id}/chunks/{index}", data=data,
                        headers={"X-Chunk-SHA256": chunk_sha256, "Content-Type": "application/octet-stream"},
                    )
                done[0] += length
                if progress is not None:
                    progress(done[0], size)
            finally:
                free.put_nowait(buffer)

        try:
            with source.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size != size:
                    raise TransferError(f"{source} changed size since it was offered; offer it again")
                for index in range(chunk_count(size, chunk_size)):
                    _offset, length = chunk_span(index, size, chunk_size)
                    buffer = await free.get()
                    for finished in [t for t in tasks if t.done()]:
                        tasks.remove(finished)
                        finished.result()
                    got, chunk_sha256 = await asyncio.to_thread(_read_and_hash, handle, buffer, length, file_digest)
                    if got != length:
                        raise TransferError(f"{source} is shorter than when it was offered; offer it again")
                    if index not in wanted:
                        free.put_nowait(buffer)
                        continue
                    tasks.append(asyncio.create_task(put(index, buffer, length, chunk_sha256)))
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        if progress is not None and not wanted:
            progress(size, size)
        return file_digest.hexdigest()

    # --- receiving ----------------------------------------------------------------------

    async def receive(
        self, transfer: TransferOut, landing: LandingFolder, saved_as: str, progress: ProgressHook | None = None
    ) -> Received:
        """Fetch every missing chunk of ``transfer`` into ``landing``'s part file for ``saved_as``, verify the
        whole file, give it its name and report it.

        The file is hashed once, in order, as chunks land. Each chunk's declared
        SHA-256 is kept in the ledger, so that if the file's hash does not match
        the sender's, the chunks on disk are checked one by one and only the bad
        ones are fetched again (up to :data:`REPAIR_ROUNDS` times).

        The verified file has its name before it is reported: whoever sees the transfer completed (the
        sender, their console) finds it there. A report the broker does not answer with ``completed`` takes
        the name back, and the part goes with it; one that does not get through (:class:`TransferError`) takes
        the name back and leaves the part and its ledger to resume from. A report answered "over" (its first
        answer lost, it was sent again) goes by the transfer's state: completed keeps the file.
        """
        part, ledger_path = landing.part(saved_as), landing.ledger(saved_as)
        ledger = load_ledger(ledger_path, transfer.id, transfer.size, transfer.chunk_size)
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, transfer.size)
            for _round in range(REPAIR_ROUNDS + 1):
                file_sha256 = await _Receiver(self, transfer, fd, ledger, ledger_path, progress).run()
                transfer = await self.wait(transfer, lambda t: t.sha256 is not None or t.state.over, timeout=24 * 3600)
                if transfer.state.over or file_sha256 == transfer.sha256:
                    break
                bad = await asyncio.to_thread(_bad_chunks, fd, ledger)
                log.warning("%s does not match its SHA-256; chunks %s are fetched again", transfer.name, bad or "none")
                if not bad:
                    break
                for index in bad:
                    ledger.forget(index)
                    await self._request("DELETE", f"/transfers/{transfer.id}/chunks/{index}")
                await asyncio.to_thread(save_ledger, ledger_path, ledger)
        finally:
            os.close(fd)
        if transfer.state.over:
            landing.discard(saved_as)
            return Received(transfer, None)
        # A file that does not match is reported all the same (the broker records the failure), never shown.
        shown = landing.show(saved_as) if file_sha256 == transfer.sha256 else None
        try:
            result = await self._complete(transfer, file_sha256)
        except TransferError as error:
            if error.error != "transfer_over":
                if shown is not None:
                    landing.withdraw(shown)
                raise
            # Over already: cancelled meanwhile, or completed by this very report, its answer lost and the
            # report sent again (only the receiver reports).
            result = await self.get(transfer.id)
        except BaseException:
            if shown is not None:
                landing.withdraw(shown)
            raise
        if result.state is TransferState.completed and shown is not None:
            landing.settle(saved_as)
            return Received(result, shown)
        if shown is not None:
            landing.withdraw(shown)
        landing.discard(saved_as)
        return Received(result, None)

    async def _complete(self, transfer: TransferOut, file_sha256: str) -> TransferOut:
        """Report the whole file. A broker that restarted during the transfer hashes the file
        again first (``hashing_again``): it has the sender upload the chunks it no longer holds,
        and the report is made again once it holds every chunk."""
        while True:
            try:
                return await self._json(
                    TransferOut, "POST", f"/transfers/{transfer.id}/complete",
                    body=TransferComplete(sha256=file_sha256),
                )
            except TransferError as error:
                if error.error != "hashing_again":
                    raise
                log.info("%s: %s", transfer.name, error.message)
            transfer = await self.wait(
                await self.get(transfer.id), lambda t: t.state.over or len(t.chunks_at_broker) == t.chunk_count,
                timeout=24 * 3600,
            )
            if transfer.state.over:
                return transfer

    async def fetch_chunk(self, transfer: TransferOut, index: int) -> tuple[bytes, str]:
        """One chunk and the SHA-256 the sender declared for it (checked by the file hash)."""
        reply = await self._get_chunk(transfer.id, index)
        return reply.body, reply.headers.get("X-Chunk-SHA256", "")

    async def _get_chunk(self, transfer_id: str, index: int) -> BrokerReply:
        while True:
            try:
                return await self._request("GET", f"/transfers/{transfer_id}/chunks/{index}", params={"wait": str(POLL_SECONDS)})
            except TransferError as error:
                if error.error not in ("chunk_not_ready", "chunk_gone"):
                    raise


class _Receiver:
    """One pass of the receiving pipeline: fetch, write, note in the ledger, hash in order."""

    def __init__(
        self, client: TransferClient, transfer: TransferOut, fd: int, ledger: ChunkLedger, ledger_path: Path,
        progress: ProgressHook | None,
    ) -> None:
        self.client, self.transfer, self.fd = client, transfer, fd
        self.ledger, self.ledger_path, self.progress = ledger, ledger_path, progress
        self.digest = hashlib.sha256()
        self.next_to_hash = 0
        self.fetched: dict[int, bytes] = {}
        self.moved = asyncio.Condition()
        self.saving = asyncio.Lock()

    async def run(self) -> str:
        if self.progress is not None:
            self.progress(self.ledger.bytes_done, self.transfer.size)  # the run's starting point (for rates)
        queue = iter(self.ledger.missing())
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.client._concurrency)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            raise
        await self._advance_hash()
        if self.progress is not None:
            self.progress(self.transfer.size, self.transfer.size)
        return self.digest.hexdigest()

    async def _worker(self, queue: Iterator[int]) -> None:
        for index in queue:
            async with self.moved:
                await self.moved.wait_for(partial(self._within_hash_window, index))
            data, sha256 = await self.client.fetch_chunk(self.transfer, index)
            offset, length = chunk_span(index, self.transfer.size, self.transfer.chunk_size)
            if len(data) != length:
                raise TransferError(f"chunk {index} of {self.transfer.name} arrived with {len(data)} bytes instead of {length}")
            self.fetched[index] = data
            async with self.saving:  # one writer at a time: a late save must not undo a newer one
                await asyncio.to_thread(_write_and_note, self.fd, data, offset, self.ledger_path, self.ledger, index, sha256)
            if self.progress is not None:
                self.progress(self.ledger.bytes_done, self.transfer.size)
            await self._advance_hash()

    def _within_hash_window(self, index: int) -> bool:
        """Whether chunk ``index`` is close enough to the hash (:data:`HASH_WINDOW`) to be fetched now."""
        return index < self.next_to_hash + HASH_WINDOW

    async def _advance_hash(self) -> None:
        """Feed the file hash every chunk that is here, in order (earlier runs' chunks from disk)."""
        async with self.moved:
            while self.next_to_hash < self.ledger.count and self.next_to_hash in self.ledger.done:
                data = self.fetched.pop(self.next_to_hash, None)
                if data is None:
                    offset, length = chunk_span(self.next_to_hash, self.transfer.size, self.transfer.chunk_size)
                    data = await asyncio.to_thread(os.pread, self.fd, length, offset)
                await asyncio.to_thread(self.digest.update, data)
                self.next_to_hash += 1
            self.moved.notify_all()


def _write_and_note(
    fd: int, data: bytes, offset: int, ledger_path: Path, ledger: ChunkLedger, index: int, sha256: str
) -> None:
    """Write a chunk, then record it: a chunk is in the ledger only once it is on disk."""
    os.pwrite(fd, data, offset)
    ledger.mark(index, sha256)
    save_ledger(ledger_path, ledger)


def _bad_chunks(fd: int, ledger: ChunkLedger) -> list[int]:
    """Chunks on disk whose SHA-256 differs from the one declared for them."""
    bad = []
    for index in sorted(ledger.done):
        offset, length = chunk_span(index, ledger.size, ledger.chunk_size)
        if hashlib.sha256(os.pread(fd, length, offset)).hexdigest() != ledger.hashes.get(index):
            bad.append(index)
    return bad


def _read_and_hash(handle: Any, buffer: bytearray, length: int, file_digest: Any) -> tuple[int, str]:
    """Read the next ``length`` bytes into ``buffer``; feed the file hash; return (bytes read, chunk hash)."""
    with memoryview(buffer)[:length] as view:
        got = handle.readinto(view)
        file_digest.update(view[:got])
        return got, hashlib.sha256(view[:got]).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a whole file (for checks and tests)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
