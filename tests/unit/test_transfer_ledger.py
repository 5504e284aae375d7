"""peer.chunk_ledger: which chunks are safely on this side, and how that survives a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peer.chunk_ledger import ChunkLedger, load_ledger, save_ledger

SIZE, CHUNK = 25, 10  # three chunks: 10, 10 and 5 bytes


def ledger(transfer_id: str = "t1", size: int = SIZE, chunk_size: int = CHUNK) -> ChunkLedger:
    """A fresh ledger for a 25-byte file in 10-byte chunks unless told otherwise."""
    return ChunkLedger(transfer_id, size, chunk_size)


def assert_fresh(found: ChunkLedger, transfer_id: str = "t1", size: int = SIZE, chunk_size: int = CHUNK) -> None:
    """``found`` is an empty ledger for the given transfer."""
    assert (found.transfer_id, found.size, found.chunk_size) == (transfer_id, size, chunk_size)
    assert found.done == set() and found.hashes == {}
    assert found.missing() == list(range(found.count))


# --- bookkeeping -----------------------------------------------------------------------------


def test_a_fresh_ledger_misses_every_chunk() -> None:
    fresh = ledger()
    assert fresh.count == 3
    assert fresh.missing() == [0, 1, 2]
    assert not fresh.complete
    assert fresh.bytes_done == 0


def test_marking_chunks_until_complete() -> None:
    book = ledger()
    book.mark(1, "h1")
    assert book.missing() == [0, 2]
    assert book.bytes_done == 10
    assert not book.complete
    book.mark(2)
    assert book.missing() == [0]
    assert book.bytes_done == 15  # the last chunk counts for its 5 bytes
    book.mark(0, "h0")
    assert book.missing() == []
    assert book.complete
    assert book.bytes_done == SIZE
    assert book.hashes == {0: "h0", 1: "h1"}


def test_marking_twice_changes_nothing() -> None:
    book = ledger()
    book.mark(0, "h0")
    book.mark(0, "h0")
    assert book.done == {0}
    assert book.bytes_done == 10


def test_marking_with_a_new_hash_replaces_the_old_one() -> None:
    book = ledger()
    book.mark(0, "old")
    book.mark(0, "new")
    assert book.hashes == {0: "new"}


def test_forget_makes_a_chunk_missing_again_and_drops_its_hash() -> None:
    book = ledger()
    for index in range(3):
        book.mark(index, f"h{index}")
    book.forget(1)
    assert book.missing() == [1]
    assert not book.complete
    assert book.bytes_done == 15
    assert book.hashes == {0: "h0", 2: "h2"}
    book.forget(1)  # forgetting what is not there is harmless
    book.forget(99)
    assert book.done == {0, 2}


@pytest.mark.parametrize("index", [-1, 3, 4, 1000])
def test_marking_an_index_outside_the_file_raises_and_records_nothing(index: int) -> None:
    book = ledger()
    with pytest.raises(ValueError):
        book.mark(index, "h")
    assert book.done == set() and book.hashes == {}


def test_an_empty_file_is_complete_at_once_and_has_no_chunks() -> None:
    empty = ledger(size=0)
    assert empty.count == 0
    assert empty.missing() == []
    assert empty.complete
    assert empty.bytes_done == 0
    with pytest.raises(ValueError):
        empty.mark(0)


def test_an_exact_multiple_has_full_chunks_only() -> None:
    book = ledger(size=30)
    for index in range(3):
        book.mark(index)
    assert book.bytes_done == 30 and book.complete


# --- JSON ------------------------------------------------------------------------------------


def test_json_round_trip_keeps_everything_including_hashes() -> None:
    book = ledger()
    book.mark(0, "a" * 64)
    book.mark(2, "c" * 64)
    book.mark(1)  # no hash declared
    back = ChunkLedger.from_json(book.to_json())
    assert back == book
    assert back.hashes == {0: "a" * 64, 2: "c" * 64}
    assert all(isinstance(k, int) for k in back.hashes)
    assert back.done == {0, 1, 2}


def test_json_is_plain_and_sorted() -> None:
    book = ledger()
    book.mark(2, "h2")
    book.mark(0)
    data = json.loads(book.to_json())
    assert data == {"transfer_id": "t1", "size": SIZE, "chunk_size": CHUNK, "done": [0, 2], "hashes": {"2": "h2"}}


def test_from_json_refuses_an_index_outside_the_file() -> None:
    text = json.dumps({"transfer_id": "t1", "size": SIZE, "chunk_size": CHUNK, "done": [3]})
    with pytest.raises(ValueError):
        ChunkLedger.from_json(text)


def test_from_json_ignores_hashes_of_chunks_not_done() -> None:
    text = json.dumps({"transfer_id": "t1", "size": SIZE, "chunk_size": CHUNK, "done": [0], "hashes": {"0": "h0", "1": "h1"}})
    assert ChunkLedger.from_json(text).hashes == {0: "h0"}


def test_from_json_accepts_a_ledger_without_hashes() -> None:
    text = json.dumps({"transfer_id": "t1", "size": SIZE, "chunk_size": CHUNK, "done": [1]})
    back = ChunkLedger.from_json(text)
    assert back.done == {1} and back.hashes == {}


# --- saving and loading ----------------------------------------------------------------------


def test_save_then_load_gives_the_same_ledger(tmp_path: Path) -> None:
    path = tmp_path / "x.ledger"
    book = ledger()
    book.mark(1, "b" * 64)
    save_ledger(path, book)
    loaded = load_ledger(path, "t1", SIZE, CHUNK)
    assert loaded == book
    assert loaded.hashes == {1: "b" * 64}


def test_save_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "x.ledger"
    (tmp_path / "x.ledger.tmp").write_text("stale from a crash")
    book = ledger()
    save_ledger(path, book)
    book.mark(0)
    save_ledger(path, book)  # replacing an existing ledger
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ledger"]
    assert load_ledger(path, "t1", SIZE, CHUNK).done == {0}


def test_a_missing_file_gives_a_fresh_ledger(tmp_path: Path) -> None:
    assert_fresh(load_ledger(tmp_path / "nope.ledger", "t1", SIZE, CHUNK))


@pytest.mark.parametrize(
    ("transfer_id", "size", "chunk_size"),
    [("t2", SIZE, CHUNK), ("t1", SIZE + 1, CHUNK), ("t1", SIZE, CHUNK * 2), ("other", 0, 1)],
)
def test_a_ledger_of_another_transfer_or_shape_is_not_used(
    tmp_path: Path, transfer_id: str, size: int, chunk_size: int
) -> None:
    path = tmp_path / "x.ledger"
    book = ledger()
    book.mark(0, "h0")
    save_ledger(path, book)
    assert_fresh(load_ledger(path, transfer_id, size, chunk_size), transfer_id, size, chunk_size)


CORRUPT: list[str | bytes] = [
    "",
    "not json",
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": [0',  # cut short
    "[]",
    "null",
    "42",
    '"t1"',
    '{"transfer_id": "t1"}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": [7]}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": [-1]}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": ["x"]}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": 3}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": [null]}',
    '{"transfer_id": "t1", "size": "big", "chunk_size": 10, "done": []}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": [0], "hashes": [1, 2]}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": [0], "hashes": "ab"}',
    '{"transfer_id": "t1", "size": 25, "chunk_size": 10, "done": [0], "hashes": {"x": "h"}}',
    b"\xff\xfe\x00garbage",  # not UTF-8
]


@pytest.mark.parametrize("content", CORRUPT)
def test_a_corrupt_file_gives_a_fresh_ledger(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "x.ledger"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    assert_fresh(load_ledger(path, "t1", SIZE, CHUNK))


def test_a_directory_where_the_ledger_should_be_gives_a_fresh_ledger(tmp_path: Path) -> None:
    path = tmp_path / "x.ledger"
    path.mkdir()
    assert_fresh(load_ledger(path, "t1", SIZE, CHUNK))
