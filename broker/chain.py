"""The audit hash chain: canonical form, hashing, checkpoint signatures, verification.

Pure functions over plain data (websockets' sans-I/O style): the database and
the files are read elsewhere (:mod:`broker.trail`), so that the same code checks
a live broker and an exported bundle offline.

Each chain (one per session, one for the broker's own events) is a sequence:
event ``n`` stores ``SHA-256(canonical JSON of its fields and the hash of event
n-1)``. A checkpoint is the broker's Ed25519 signature over a chain's head at a
sequence number. Editing an event changes its hash; deleting, inserting or
reordering breaks a sequence number or a ``prev`` link; rewriting the whole
tail to hide that contradicts a signed checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

GENESIS = "0" * 64
"""The ``prev`` of every chain's first event."""
BROKER_CHAIN = "broker"
"""The chain of events that belong to no session (logins, accounts...)."""
_CHECKPOINT_DOMAIN = b"deskhand-checkpoint-v1\n"


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the one byte form that is hashed and signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class ChainEvent:
    """An event as it is chained (``at`` is an ISO-8601 UTC string)."""

    id: int
    chain: str
    seq: int
    at: str
    kind: str
    actor: str
    source: str | None
    session_id: str | None
    ticket_id: int | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def fields(self) -> dict[str, Any]:
        """What the hash covers (everything but the stored hash and the row id)."""
        return {
            "chain": self.chain, "seq": self.seq, "at": self.at, "kind": self.kind, "actor": self.actor,
            "source": self.source, "session_id": self.session_id, "ticket_id": self.ticket_id,
            "data": dict(self.data), "prev": self.prev_hash,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.fields(), "id": self.id, "hash": self.hash}


def event_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(fields))).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    chain: str
    seq: int
    head_hash: str
    signed_at: str
    signature: str

    def payload(self) -> bytes:
        return checkpoint_payload(self.chain, self.seq, self.head_hash, self.signed_at)

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "head_hash": self.head_hash,
                "signed_at": self.signed_at, "signature": self.signature}


def checkpoint_payload(chain: str, seq: int, head_hash: str, signed_at: str) -> bytes:
    return _CHECKPOINT_DOMAIN + canonical({"chain": chain, "seq": seq, "head": head_hash, "at": signed_at})


def sign_checkpoint(key: Ed25519PrivateKey, chain: str, seq: int, head_hash: str, signed_at: str) -> Checkpoint:
    signature = key.sign(checkpoint_payload(chain, seq, head_hash, signed_at))
    return Checkpoint(chain, seq, head_hash, signed_at, base64.b64encode(signature).decode("ascii"))


@dataclass(frozen=True)
class Problem:
    """The first thing that does not check out, in words an auditor can act on."""

    chain: str
    seq: int | None
    event_id: int | None
    what: str

    def __str__(self) -> str:
        where = f"chain {self.chain}"
        if self.seq is not None:
            where += f", event {self.seq}"
        if self.event_id is not None:
            where += f" (row {self.event_id})"
        return f"{where}: {self.what}"


@dataclass
class Verdict:
    """What verification found: every problem, the first named first."""

    events: int = 0
    chains: int = 0
    checkpoints: int = 0
    segments: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(chain: str, events: Iterable[ChainEvent], checkpoints: Iterable[Checkpoint], key: Ed25519PublicKey) -> list[Problem]:
    """Recompute one chain and check its checkpoints; the problems, in chain order."""
    problems: list[Problem] = []
    ordered = sorted(events, key=lambda e: (e.seq, e.id))
    by_seq: dict[int, ChainEvent] = {}
    previous_hash = GENESIS
    expected_seq = 1
    for event in ordered:
        if event.seq in by_seq:
            problems.append(Problem(chain, event.seq, event.id, "a second event with this number was inserted"))
            continue
        if event.seq > expected_seq:
            missing = f"{expected_seq}" if event.seq == expected_seq + 1 else f"{expected_seq}-{event.seq - 1}"
            problems.append(Problem(chain, expected_seq, None, f"event {missing} was deleted"))
        elif event.prev_hash != previous_hash:
            problems.append(Problem(chain, event.seq, event.id,
                                    "does not follow the event before it (reordered, or one was inserted or deleted)"))
        if event_hash(event.fields()) != event.hash:
            problems.append(Problem(chain, event.seq, event.id, f"was edited ({event.kind} no longer matches its hash)"))
        by_seq[event.seq] = event
        previous_hash = event.hash
        expected_seq = event.seq + 1
    for checkpoint in sorted(checkpoints, key=lambda c: c.seq):
        try:
            key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.payload())
        except (InvalidSignature, binascii.Error, ValueError):
            problems.append(Problem(chain, checkpoint.seq, None, "a checkpoint's signature is not the broker's"))
            continue
        held = by_seq.get(checkpoint.seq)
        if held is None:
            problems.append(Problem(chain, checkpoint.seq, None,
                                    f"the broker signed {checkpoint.seq} events here, but the chain ends before (events were deleted)"))
        elif held.hash != checkpoint.head_hash:
            problems.append(Problem(chain, checkpoint.seq, held.id,
                                    "differs from what the broker signed at that point (the chain was rewritten)"))
    problems.sort(key=lambda p: p.seq if p.seq is not None else 0)
    return problems


def segment_problem(chain: str, event: ChainEvent, actual_sha256: str | None, *, stored: bool) -> Problem | None:
    """Check one recording segment against the event that recorded its hash.

    ``stored``: ``actual_sha256`` is of the encrypted file as the broker keeps it
    (``stored_sha256``); otherwise of the segment as recorded (``sha256``, as in a bundle).
    """
    expected = event.data.get("stored_sha256" if stored else "sha256")
    if actual_sha256 is None:
        return Problem(chain, event.seq, event.id, f"recording segment {event.data.get('index')} is missing")
    if actual_sha256 != expected:
        return Problem(chain, event.seq, event.id, f"recording segment {event.data.get('index')} was altered")
    return None
