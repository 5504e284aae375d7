"""Which chunks of a transfer are safely on this side: the memory that makes resuming possible.

Pure bookkeeping plus two small functions that save and load it as JSON next
to the partial file (written atomically, so a crash leaves the old or the new
ledger, never half of one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from protocol.transfers import chunk_count, chunk_span


@dataclass
class ChunkLedger:
    """Verified chunks of one transfer, on the receiving or the sending side."""

    transfer_id: str
    size: int
    chunk_size: int
    done: set[int] = field(default_factory=set)
    hashes: dict[int, str] = field(default_factory=dict)
    """Each done chunk's SHA-256 as the sender declared it (to find a bad chunk later)."""

    @property
    def count(self) -> int:
        return chunk_count(self.size, self.chunk_size)

    def missing(self) -> list[int]:
        return [i for i in range(self.count) if i not in self.done]

    def mark(self, index: int, sha256: str = "") -> None:
        chunk_span(index, self.size, self.chunk_size)  # refuses an index outside the file
        self.done.add(index)
        if sha256:
            self.hashes[index] = sha256

    def forget(self, index: int) -> None:
        self.done.discard(index)
        self.hashes.pop(index, None)

    @property
    def complete(self) -> bool:
        return len(self.done) == self.count

    @property
    def bytes_done(self) -> int:
        return sum(chunk_span(i, self.size, self.chunk_size)[1] for i in self.done)

    def to_json(self) -> str:
        return json.dumps(
            {"transfer_id": self.transfer_id, "size": self.size, "chunk_size": self.chunk_size,
             "done": sorted(self.done), "hashes": {str(k): v for k, v in self.hashes.items()}}
        )

    @classmethod
    def from_json(cls, text: str) -> ChunkLedger:
        data = json.loads(text)
        ledger = cls(str(data["transfer_id"]), int(data["size"]), int(data["chunk_size"]))
        hashes = {int(k): str(v) for k, v in dict(data.get("hashes", {})).items()}
        for index in data["done"]:
            ledger.mark(int(index), hashes.get(int(index), ""))
        return ledger


def save_ledger(path: Path, ledger: ChunkLedger) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(ledger.to_json(), "utf-8")
    os.replace(temporary, path)


def load_ledger(path: Path, transfer_id: str, size: int, chunk_size: int) -> ChunkLedger:
    """The saved ledger if it belongs to this transfer, else a fresh one."""
    try:
        ledger = ChunkLedger.from_json(path.read_text("utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return ChunkLedger(transfer_id, size, chunk_size)
    if (ledger.transfer_id, ledger.size, ledger.chunk_size) != (transfer_id, size, chunk_size):
        return ChunkLedger(transfer_id, size, chunk_size)
    return ledger
