"""broker.sessions.spool: chunks between upload and download (memory within a budget, disk beyond), the
broker's own hash of the relayed file, and the wake-ups of long polls."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from broker.sessions.spool import FOLDER, ChunkRejected, ChunkSignals, TransferSpool
from broker.storage.blobs import LocalBlobs
from protocol.waits import wait_until_set

CHUNK = 1000


def sha(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating content (so chunks differ from each other)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def chunks_of(data: bytes, chunk_size: int = CHUNK) -> list[bytes]:
    """``data`` cut into chunks as the peers cut it."""
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


async def pieces(data: bytes, step: int = 300) -> AsyncIterator[bytes]:
    """An HTTP body arriving ``step`` bytes at a time."""
    for i in range(0, len(data), step):
        yield data[i : i + step]
        await asyncio.sleep(0)


async def put(
    spool: TransferSpool, transfer_id: str, index: int, data: bytes, *, size: int | None = None,
    sha256: str | None = None, body: AsyncIterator[bytes] | None = None,
) -> None:
    """Upload ``data`` as chunk ``index`` (declared size and hash default to the true ones)."""
    await spool.receive(
        transfer_id, index, body if body is not None else pieces(data),
        size=len(data) if size is None else size, sha256=sha(data) if sha256 is None else sha256,
    )


def spool_root(spool: TransferSpool) -> Path:
    """The folder holding a spool's chunk files."""
    return cast(LocalBlobs, spool.blobs).path(FOLDER)


def chunk_file(spool: TransferSpool, transfer_id: str, index: int) -> Path:
    return cast(LocalBlobs, spool.blobs).path(spool.chunk_name(transfer_id, index))


def stored_files(spool: TransferSpool) -> list[Path]:
    """Every file under the spool's root."""
    return sorted(p for p in spool_root(spool).rglob("*") if p.is_file())


@pytest.fixture
def spool(tmp_path: Path) -> TransferSpool:
    """A spool with plenty of memory."""
    return TransferSpool(LocalBlobs(tmp_path), memory_budget=10**8)


@pytest.fixture
def disk_spool(tmp_path: Path) -> TransferSpool:
    """A spool with no memory: every chunk goes to disk."""
    return TransferSpool(LocalBlobs(tmp_path), memory_budget=0)


# --- storing ----------------------------------------------------------------------------------


async def test_a_good_chunk_within_the_budget_is_kept_in_memory(spool: TransferSpool) -> None:
    data = file_bytes(CHUNK)
    assert not spool.has("t", 0)
    await put(spool, "t", 0, data)
    assert spool.has("t", 0)
    assert spool.memory_used == CHUNK
    assert bytes(spool.read("t", 0) or b"") == data
    assert stored_files(spool) == []  # no disk writes at all
    assert not (spool_root(spool) / "t").exists()
    assert "t" in spool.transfer_ids()


async def test_a_chunk_over_the_budget_goes_to_disk_under_its_transfer(disk_spool: TransferSpool) -> None:
    data = file_bytes(CHUNK)
    await put(disk_spool, "t", 3, data)
    path = chunk_file(disk_spool, "t", 3)
    assert path.parent == spool_root(disk_spool) / "t"
    assert path.read_bytes() == data
    assert stored_files(disk_spool) == [path]  # no temporary file left
    assert disk_spool.memory_used == 0
    assert disk_spool.has("t", 3)
    assert bytes(disk_spool.read("t", 3) or b"") == data
    assert "t" in disk_spool.transfer_ids()


async def test_memory_fills_up_to_the_budget_then_disk_takes_over(tmp_path: Path) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=2 * CHUNK)
    data = file_bytes(4 * CHUNK)
    for index, chunk in enumerate(chunks_of(data)):
        await put(spool, "t", index, chunk)
    assert spool.memory_used == 2 * CHUNK  # exactly the budget: "within" includes equal
    assert [p.name for p in stored_files(spool)] == [chunk_file(spool, "t", i).name for i in (2, 3)]
    for index, chunk in enumerate(chunks_of(data)):
        assert spool.copy_out("t", index) == chunk


async def test_a_chunk_arriving_in_one_piece_or_many_is_the_same(spool: TransferSpool) -> None:
    data = file_bytes(CHUNK)
    await put(spool, "t", 0, data, body=pieces(data, step=CHUNK))
    await put(spool, "t", 1, data, body=pieces(data, step=1))
    assert spool.copy_out("t", 0) == spool.copy_out("t", 1) == data


async def test_an_upload_again_replaces_the_chunk_without_counting_it_twice(spool: TransferSpool) -> None:
    data = file_bytes(CHUNK)
    await put(spool, "t", 0, data)
    await put(spool, "t", 0, data)
    assert spool.memory_used == CHUNK
    assert spool.copy_out("t", 0) == data


# --- rejecting --------------------------------------------------------------------------------


def bad_uploads() -> list[tuple[str, bytes, int, str]]:
    """(what is wrong, body, declared size, declared hash)."""
    good = file_bytes(CHUNK)
    return [
        ("longer", good + b"x", CHUNK, sha(good)),
        ("much longer", good * 3, CHUNK, sha(good)),
        ("shorter", good[:-1], CHUNK, sha(good)),
        ("empty", b"", CHUNK, sha(good)),
        ("wrong hash", good, CHUNK, sha(good + b"x")),
        ("flipped byte", bytes([good[0] ^ 1]) + good[1:], CHUNK, sha(good)),
        ("garbage hash", good, CHUNK, "0" * 64),
    ]


@pytest.mark.parametrize("budget", [10**8, 0], ids=["memory", "disk"])
@pytest.mark.parametrize(("what", "body", "size", "declared"), bad_uploads(), ids=[b[0] for b in bad_uploads()])
async def test_a_chunk_not_as_declared_is_rejected_and_nothing_is_stored(
    tmp_path: Path, budget: int, what: str, body: bytes, size: int, declared: str
) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=budget)
    with pytest.raises(ChunkRejected):
        await spool.receive("t", 0, pieces(body), size=size, sha256=declared)
    assert not spool.has("t", 0)
    assert spool.read("t", 0) is None
    assert spool.memory_used == 0
    assert stored_files(spool) == []
    assert spool.file_sha256("t", 1) is None


@pytest.mark.parametrize(
    ("body", "size", "declared", "match"),
    [
        (b"x" * 11, 10, sha(b"x" * 10), "longer"),
        (b"x" * 9, 10, sha(b"x" * 10), "9 bytes instead of 10"),
        (b"x" * 10, 10, sha(b"y" * 10), "SHA-256"),
    ],
)
async def test_the_rejection_says_what_was_wrong(spool: TransferSpool, body: bytes, size: int, declared: str, match: str) -> None:
    with pytest.raises(ChunkRejected, match=match):
        await spool.receive("t", 4, pieces(body), size=size, sha256=declared)


async def test_a_rejected_upload_leaves_the_stored_copy_of_the_chunk_intact(spool: TransferSpool) -> None:
    data = file_bytes(CHUNK)
    await put(spool, "t", 0, data)
    with pytest.raises(ChunkRejected):
        await put(spool, "t", 0, data[::-1], sha256=sha(data))
    assert spool.copy_out("t", 0) == data
    assert spool.memory_used == CHUNK


async def test_after_a_rejection_the_same_chunk_can_be_uploaded_again(spool: TransferSpool) -> None:
    data = file_bytes(CHUNK)
    with pytest.raises(ChunkRejected):
        await put(spool, "t", 0, data, sha256="f" * 64)
    await put(spool, "t", 0, data)
    assert spool.copy_out("t", 0) == data
    assert spool.file_sha256("t", 1) == sha(data)


async def test_a_body_that_fails_midway_stores_nothing(spool: TransferSpool) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await spool.receive("t", 0, broken(), size=CHUNK, sha256="0" * 64)
    assert not spool.has("t", 0) and spool.memory_used == 0


# --- reading, delivering ----------------------------------------------------------------------


async def test_read_and_copy_out_of_a_missing_chunk_are_none(spool: TransferSpool) -> None:
    assert spool.read("t", 0) is None
    assert spool.copy_out("t", 0) is None
    await put(spool, "t", 0, b"abc")
    assert spool.read("t", 1) is None
    assert spool.read("other", 0) is None


@pytest.mark.parametrize("budget", [10**8, 0], ids=["memory", "disk"])
async def test_copy_out_is_independent_of_the_reused_buffer(tmp_path: Path, budget: int) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=budget)
    first, second = file_bytes(CHUNK, seed=1), file_bytes(CHUNK, seed=2)
    await put(spool, "t", 0, first)
    copy = spool.copy_out("t", 0)
    assert type(copy) is bytes and copy == first
    spool.delivered("t", 0)
    await put(spool, "t", 1, second)  # likely lands in the buffer chunk 0 had
    assert copy == first


async def test_a_buffer_goes_back_to_the_pool_and_is_reused(spool: TransferSpool) -> None:
    first, second = file_bytes(CHUNK, seed=1), file_bytes(CHUNK, seed=2)
    await put(spool, "t", 0, first)
    view = spool.read("t", 0)
    assert isinstance(view, memoryview)
    buffer = view.obj
    spool.delivered("t", 0)
    await put(spool, "t", 1, second)
    again = spool.read("t", 1)
    assert isinstance(again, memoryview)
    assert again.obj is buffer  # the same buffer, refilled
    assert bytes(again) == second


async def test_delivered_frees_memory_and_the_chunk_is_gone_after(spool: TransferSpool) -> None:
    data = file_bytes(3 * CHUNK)
    for index, chunk in enumerate(chunks_of(data)):
        await put(spool, "t", index, chunk)
    assert spool.memory_used == 3 * CHUNK
    spool.delivered("t", 0)
    assert spool.memory_used == 2 * CHUNK
    assert spool.read("t", 0) is None and spool.copy_out("t", 0) is None and not spool.has("t", 0)
    assert spool.copy_out("t", 1) == chunks_of(data)[1]
    spool.delivered("t", 1)
    spool.delivered("t", 2)
    assert spool.memory_used == 0
    assert spool.file_sha256("t", 3) == sha(data)  # the hash survives the chunks


async def test_delivered_removes_a_chunk_on_disk(disk_spool: TransferSpool) -> None:
    await put(disk_spool, "t", 0, b"abc")
    path = chunk_file(disk_spool, "t", 0)
    assert path.exists()
    disk_spool.delivered("t", 0)
    assert not path.exists()
    assert disk_spool.read("t", 0) is None


async def test_delivering_twice_or_a_chunk_never_stored_is_harmless(spool: TransferSpool) -> None:
    await put(spool, "t", 0, b"abc")
    spool.delivered("t", 0)
    spool.delivered("t", 0)
    spool.delivered("never", 5)
    assert spool.memory_used == 0


async def test_many_chunks_reuse_buffers_and_memory_returns_to_zero(spool: TransferSpool) -> None:
    data = file_bytes(60 * CHUNK + 123)
    buffers: set[int] = set()
    for index, chunk in enumerate(chunks_of(data)):
        await put(spool, "t", index, chunk)
        view = spool.read("t", index)
        assert isinstance(view, memoryview)
        buffers.add(id(view.obj))
        assert spool.copy_out("t", index) == chunk
        del view
        spool.delivered("t", index)
        assert spool.memory_used == 0
    assert len(buffers) == 1  # one buffer did all the work
    assert spool.file_sha256("t", 61) == sha(data)


async def test_a_pipeline_keeps_memory_bounded(spool: TransferSpool) -> None:
    data = file_bytes(20 * CHUNK)
    chunks = chunks_of(data)
    peak = 0
    for index, chunk in enumerate(chunks):
        await put(spool, "t", index, chunk)
        peak = max(peak, spool.memory_used)
        if index >= 2:  # the receiver is two chunks behind
            assert spool.copy_out("t", index - 2) == chunks[index - 2]
            spool.delivered("t", index - 2)
    for index in (18, 19):
        spool.delivered("t", index)
    assert peak == 3 * CHUNK
    assert spool.memory_used == 0
    assert spool.file_sha256("t", 20) == sha(data)


# --- the broker's hash of the file ------------------------------------------------------------


BUDGETS = pytest.mark.parametrize("budget", [10**8, 0, 2 * CHUNK], ids=["memory", "disk", "mixed"])


@BUDGETS
async def test_file_sha256_in_order(tmp_path: Path, budget: int) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=budget)
    data = file_bytes(2 * CHUNK + 500)  # the last chunk is shorter
    for index, chunk in enumerate(chunks_of(data)):
        assert spool.file_sha256("t", 3) is None  # not before every chunk passed
        await put(spool, "t", index, chunk)
    assert spool.file_sha256("t", 3) == sha(data)
    assert spool.file_sha256("t", 4) is None  # a wrong count is not a hash


@BUDGETS
@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0), (2, 1, 0), (0, 2, 1), (1, 0, 2), (3, 1, 0, 2), (3, 2, 1, 0)])
async def test_file_sha256_out_of_order(tmp_path: Path, budget: int, order: tuple[int, ...]) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=budget)
    data = file_bytes((len(order) - 1) * CHUNK + 321)
    chunks = chunks_of(data)
    for index in order:
        await put(spool, "t", index, chunks[index])
    assert spool.file_sha256("t", len(order)) == sha(data)
    for index in order:  # nothing was lost or freed on the way
        assert spool.copy_out("t", index) == chunks[index]


@BUDGETS
async def test_an_early_chunk_delivered_before_its_turn_is_still_hashed(tmp_path: Path, budget: int) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=budget)
    data = file_bytes(2 * CHUNK + 77)
    chunks = chunks_of(data)
    await put(spool, "t", 2, chunks[2])
    assert spool.copy_out("t", 2) == chunks[2]
    spool.delivered("t", 2)  # the receiver took it before chunks 0 and 1 came
    await put(spool, "t", 0, chunks[0])
    spool.delivered("t", 0)
    await put(spool, "t", 1, chunks[1])
    spool.delivered("t", 1)
    assert spool.file_sha256("t", 3) == sha(data)
    # Once the hash has passed it, the early chunk is freed like the others.
    assert spool.memory_used == 0
    assert stored_files(spool) == []
    assert all(spool.read("t", i) is None for i in range(3))


@BUDGETS
async def test_several_early_chunks_delivered_before_their_turn(tmp_path: Path, budget: int) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=budget)
    data = file_bytes(5 * CHUNK)
    chunks = chunks_of(data)
    for index in (4, 2, 3, 1):
        await put(spool, "t", index, chunks[index])
        spool.delivered("t", index)
    assert spool.file_sha256("t", 5) is None
    for index in (1, 2, 3, 4):  # kept until hashed
        assert spool.copy_out("t", index) == chunks[index]
    await put(spool, "t", 0, chunks[0])
    assert spool.file_sha256("t", 5) == sha(data)
    spool.delivered("t", 0)
    assert spool.memory_used == 0
    assert stored_files(spool) == []


async def test_an_early_chunk_not_yet_delivered_stays_after_the_hash_passes(spool: TransferSpool) -> None:
    data = file_bytes(2 * CHUNK)
    chunks = chunks_of(data)
    await put(spool, "t", 1, chunks[1])
    await put(spool, "t", 0, chunks[0])
    assert spool.file_sha256("t", 2) == sha(data)
    assert spool.copy_out("t", 1) == chunks[1]  # the receiver has not had it yet


async def test_an_upload_again_of_a_hashed_chunk_does_not_change_the_hash(spool: TransferSpool) -> None:
    data = file_bytes(2 * CHUNK)
    chunks = chunks_of(data)
    await put(spool, "t", 0, chunks[0])
    spool.delivered("t", 0)
    await put(spool, "t", 0, chunks[0])  # the receiver crashed, the sender sends it again
    await put(spool, "t", 1, chunks[1])
    assert spool.file_sha256("t", 2) == sha(data)
    assert spool.copy_out("t", 0) == chunks[0]


async def test_transfers_are_hashed_independently(spool: TransferSpool) -> None:
    a, b = file_bytes(2 * CHUNK, seed=1), file_bytes(2 * CHUNK + 1, seed=2)
    await put(spool, "b", 2, chunks_of(b)[2])
    await put(spool, "a", 1, chunks_of(a)[1])
    await put(spool, "b", 0, chunks_of(b)[0])
    await put(spool, "a", 0, chunks_of(a)[0])
    await put(spool, "b", 1, chunks_of(b)[1])
    assert spool.file_sha256("a", 2) == sha(a)
    assert spool.file_sha256("b", 3) == sha(b)


async def test_chunks_received_concurrently_hash_the_file(tmp_path: Path) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=4 * CHUNK)
    data = file_bytes(12 * CHUNK + 5)
    chunks = chunks_of(data)
    order = [3, 0, 1, 7, 2, 12, 4, 5, 6, 8, 11, 10, 9]
    await asyncio.gather(*(put(spool, "t", i, chunks[i]) for i in order))
    assert spool.file_sha256("t", len(chunks)) == sha(data)


@pytest.mark.parametrize("seed", range(20))
async def test_chunks_stored_in_any_order_by_racing_threads_are_hashed_once_each(tmp_path: Path, seed: int) -> None:
    """Many interleavings of storing threads, some chunks sent twice: the file hash is always right."""
    rng = random.Random(seed)
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=(seed % 3 + 1) * CHUNK)
    data = file_bytes(9 * CHUNK + seed, seed=seed)
    chunks = chunks_of(data)
    order = list(range(len(chunks))) + rng.sample(range(len(chunks)), 3)
    rng.shuffle(order)
    await asyncio.gather(*(put(spool, "t", i, chunks[i]) for i in order))
    assert spool.file_sha256("t", len(chunks)) == sha(data)


# --- remove -----------------------------------------------------------------------------------


async def test_remove_frees_everything_of_one_transfer_only(tmp_path: Path) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=2 * CHUNK)
    data = file_bytes(4 * CHUNK)
    for index, chunk in enumerate(chunks_of(data)):
        await put(spool, "t", index, chunk)
    spool.delivered("t", 2)
    await put(spool, "keep", 0, b"kept")
    await put(spool, "keep-disk", 0, b"kept on disk")  # over the budget: on disk
    memory_before = spool.memory_used
    spool.remove("t")
    assert spool.memory_used == memory_before - 2 * CHUNK
    assert not (spool_root(spool) / "t").exists()
    assert all(not spool.has("t", i) and spool.read("t", i) is None for i in range(4))
    assert spool.file_sha256("t", 4) is None
    assert "t" not in spool.transfer_ids()
    assert spool.copy_out("keep", 0) == b"kept"
    assert spool.copy_out("keep-disk", 0) == b"kept on disk"
    assert {"keep", "keep-disk"} <= spool.transfer_ids()
    spool.remove("keep")
    spool.remove("keep-disk")
    assert spool.memory_used == 0
    assert stored_files(spool) == []
    spool.remove("never existed")


async def test_remove_forgets_chunks_delivered_before_their_turn(spool: TransferSpool) -> None:
    data = file_bytes(2 * CHUNK)
    chunks = chunks_of(data)
    await put(spool, "t", 1, chunks[1])
    spool.delivered("t", 1)
    spool.remove("t")
    # The same id used again starts from nothing: its chunk 1 is not dropped as "delivered".
    await put(spool, "t", 1, chunks[1])
    await put(spool, "t", 0, chunks[0])
    assert spool.file_sha256("t", 2) == sha(data)
    assert spool.copy_out("t", 1) == chunks[1]


async def test_a_new_spool_finds_transfers_left_on_disk(tmp_path: Path) -> None:
    first = TransferSpool(LocalBlobs(tmp_path), memory_budget=0)
    await put(first, "t", 0, b"abc")
    second = TransferSpool(LocalBlobs(tmp_path), memory_budget=0)  # a broker restart
    assert second.transfer_ids() == {"t"}
    assert second.copy_out("t", 0) == b"abc"
    assert second.file_sha256("t", 1) is None  # the hash did not survive: the broker cannot tell


async def test_after_a_restart_the_hash_resumes_from_chunks_on_disk_and_chunks_sent_again(tmp_path: Path) -> None:
    data = file_bytes(5 * CHUNK + 9)
    chunks = chunks_of(data)
    first = TransferSpool(LocalBlobs(tmp_path), memory_budget=2 * CHUNK)
    for index in range(5):
        await put(first, "t", index, chunks[index])  # 0 and 1 in memory, 2-4 on disk
    for index in (0, 2):
        first.delivered("t", index)  # the receiver has them: freed
    restarted = TransferSpool(LocalBlobs(tmp_path), memory_budget=2 * CHUNK)
    await put(restarted, "t", 5, chunks[5])  # the last chunk arrives after the restart
    restarted.delivered("t", 5)
    assert restarted.file_sha256("t", 6) is None
    # The receiver reports: 0 and 2 were freed, 1 was lost with the memory; 3 and 4 wait on disk.
    assert restarted.resume_hash("t", 6) == [0, 1, 2]
    for index in (0, 1, 2):  # the sender uploads them again
        await put(restarted, "t", index, chunks[index])
    assert restarted.resume_hash("t", 6) == []
    assert restarted.file_sha256("t", 6) == sha(data)
    # What only the hash needed is freed once hashed; 3 and 4 stay until the transfer ends.
    assert [i for i in range(6) if restarted.has("t", i)] == [3, 4]


async def test_resuming_a_hash_that_is_through_reads_nothing(spool: TransferSpool) -> None:
    data = file_bytes(2 * CHUNK)
    for index, chunk in enumerate(chunks_of(data)):
        await put(spool, "t", index, chunk)
        spool.delivered("t", index)
    assert spool.resume_hash("t", 2) == []
    assert spool.file_sha256("t", 2) == sha(data)
    assert spool.resume_hash("empty", 0) == [] and spool.file_sha256("empty", 0) == sha(b"")


async def test_the_folders_of_chunks_on_disk_are_private(tmp_path: Path) -> None:
    spool = TransferSpool(LocalBlobs(tmp_path / "a"), memory_budget=0)
    await put(spool, "t", 0, b"abc")
    for folder in (tmp_path / "a", spool_root(spool), spool_root(spool) / "t"):
        assert folder.is_dir() and os.stat(folder).st_mode & 0o077 == 0, folder


# --- signals ----------------------------------------------------------------------------------


async def test_a_listener_taken_before_a_change_is_set_by_it() -> None:
    signals = ChunkSignals()
    with signals.listen("t") as event, signals.listen("u") as other:
        assert not event.is_set()
        signals.changed("t")
        assert event.is_set()
        assert not other.is_set()
        assert await wait_until_set(event, 0.01)


async def test_listeners_of_the_same_transfer_share_the_wake_up() -> None:
    signals = ChunkSignals()
    with signals.listen("t") as first, signals.listen("t") as second:
        assert first is second
        signals.changed("t")
        assert first.is_set()


async def test_a_listener_taken_after_a_change_waits_for_the_next() -> None:
    signals = ChunkSignals()
    with signals.listen("t") as old:
        signals.changed("t")
        with signals.listen("t") as new:
            assert old.is_set() and not new.is_set()
            signals.changed("t")
            assert new.is_set()


async def test_a_change_nobody_listens_to_is_harmless() -> None:
    signals = ChunkSignals()
    signals.changed("t")
    with signals.listen("t") as event:
        assert not event.is_set()


async def test_the_last_listener_to_leave_takes_the_wake_up_with_it() -> None:
    """Before: a wake-up stayed until its key changed, which for an id that names nothing is never."""
    signals = ChunkSignals()
    for n in range(1000):
        with signals.listen(f"unknown-{n}"):
            pass
    with pytest.raises(LookupError), signals.listen("failing"):
        raise LookupError("a transfer that does not exist")
    with signals.listen("t") as first:
        with signals.listen("t") as second:
            assert len(signals) == 1
        assert len(signals) == 1  # the first still waits on it
        assert first is second
    assert len(signals) == 0


async def test_a_listener_leaving_after_a_change_keeps_the_next_wake_up() -> None:
    signals = ChunkSignals()
    with signals.listen("t") as old:
        signals.changed("t")
        with signals.listen("t") as new:
            pass
        with signals.listen("t") as newest:
            assert newest is not old
    assert old.is_set() and not new.is_set()
    assert len(signals) == 0
    with signals.listen("t") as waiting:
        with signals.listen("t") as fired:
            signals.changed("t")
        with signals.listen("t") as next_one:
            assert len(signals) == 1
            signals.changed("t")
        assert fired.is_set() and waiting.is_set() and next_one.is_set()
    assert len(signals) == 0


async def test_wait_for_times_out_without_a_change() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with ChunkSignals().listen("t") as event:
        assert await wait_until_set(event, 0.05) is False
    assert 0.04 <= loop.time() - start < 1.0


async def test_wait_for_wakes_up_on_a_change() -> None:
    signals = ChunkSignals()
    loop = asyncio.get_running_loop()
    with signals.listen("t") as event:
        loop.call_later(0.01, signals.changed, "t")
        start = loop.time()
        assert await wait_until_set(event, 5) is True
        assert loop.time() - start < 1.0


async def test_sealed_chunks_are_ciphertext_at_rest_and_an_altered_one_is_gone(tmp_path: Path) -> None:
    """What an object store holds (sealed as there; on disk here to look at it): its operator reads
    nothing, and a chunk changed there is not delivered (the sender uploads it again)."""
    spool = TransferSpool(LocalBlobs(tmp_path), memory_budget=0, seal_key=os.urandom(32))
    data = file_bytes(CHUNK)
    await put(spool, "t", 0, data)
    await put(spool, "t", 1, data)
    stored = chunk_file(spool, "t", 0).read_bytes()
    assert data[:64] not in stored and data[-64:] not in stored
    assert spool.copy_out("t", 0) == data
    chunk_file(spool, "t", 0).write_bytes(stored[:-1] + bytes([stored[-1] ^ 1]))
    chunk_file(spool, "t", 1).write_bytes(stored)  # chunk 0's sealed bytes, put in chunk 1's place
    assert spool.copy_out("t", 0) is None, "altered: gone"
    assert spool.copy_out("t", 1) is None, "another index's bytes do not open as this one"


def test_chunks_in_a_shared_store_must_be_sealed(tmp_path: Path) -> None:
    class Shared(LocalBlobs):
        shared = True

    with pytest.raises(ValueError, match="sealed"):
        TransferSpool(Shared(tmp_path))
