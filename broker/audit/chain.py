"""The audit hash chain: canonical form, hashing, signed heads, verification.

Pure functions over plain data (websockets' sans-I/O style): the database and
the files are read elsewhere (:mod:`broker.audit.trail`, :mod:`broker.audit.bundles`), so
that the same code checks a live broker, an exported bundle offline, and heads
kept outside the broker.

Each chain (one per session, one for the broker's own events) is a sequence:
event ``n`` stores ``SHA-256(canonical JSON of its fields and the hash of event
n-1)``. A *signed head* is the broker's Ed25519 signature over a chain's last
hash at a sequence number; the broker signs a chain's head in the same
transaction that seals events into it, so every sealed event is covered by a
signed head. Editing an event changes its hash; deleting, inserting or
reordering breaks a sequence number or a ``prev`` link; rewriting the whole
tail to hide that contradicts the signed head, and appending needs a new one:
none of it can be done without the signing key. What even the key holder cannot
rewrite is what heads exported earlier cover (:func:`check_exported_heads`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
# The payload's domain predates the name "signed head": heads signed since then stay valid.
_HEAD_DOMAIN = b"deskhand-checkpoint-v1\n"

CHAIN_OPENED = "chain.opened"
"""Broker-chain event: a session's chain began (``chain``, ``first_hash``)."""
CHAIN_CLOSED = "chain.closed"
"""Broker-chain event: a session ended, its chain's head at that point (``chain``, ``seq``, ``head``)."""
SESSION_END_KINDS = frozenset({"session.ended", "session.expired"})
"""Events after which the broker commits a session's head into the broker chain."""


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

    def hashes_right(self) -> bool:
        """Whether the stored hash is the hash of the event's fields."""
        return event_hash(self.fields()) == self.hash

    def to_json(self) -> dict[str, Any]:
        return {**self.fields(), "id": self.id, "hash": self.hash}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainEvent:
        """The inverse of :meth:`to_json`; raises KeyError/TypeError/ValueError on a malformed one."""
        values = {
            "id": int(data["id"]), "chain": str(data["chain"]), "seq": int(data["seq"]), "at": str(data["at"]),
            "kind": str(data["kind"]), "actor": str(data["actor"]), "source": _optional_str(data["source"]),
            "session_id": _optional_str(data["session_id"]),
            "ticket_id": None if data["ticket_id"] is None else int(data["ticket_id"]),
            "data": data["data"], "prev_hash": str(data["prev"]), "hash": str(data["hash"]),
        }
        if not isinstance(values["data"], Mapping):
            raise TypeError("an event's data is not an object")
        return cls(**values)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def event_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(fields))).hexdigest()


@dataclass(frozen=True)
class SignedHead:
    """The broker's signature over a chain's hash at event ``seq``."""

    chain: str
    seq: int
    head_hash: str
    signed_at: str
    signature: str

    def payload(self) -> bytes:
        return head_payload(self.chain, self.seq, self.head_hash, self.signed_at)

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.payload())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "head_hash": self.head_hash,
                "signed_at": self.signed_at, "signature": self.signature}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignedHead:
        """The inverse of :meth:`to_json`; raises KeyError/TypeError/ValueError on a malformed one."""
        seq = data["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"a head's seq must be a positive number, not {seq!r}")
        return cls(str(data["chain"]), seq, str(data["head_hash"]), str(data["signed_at"]), str(data["signature"]))


def head_payload(chain: str, seq: int, head_hash: str, signed_at: str) -> bytes:
    return _HEAD_DOMAIN + canonical({"chain": chain, "seq": seq, "head": head_hash, "at": signed_at})


def sign_head(key: Ed25519PrivateKey, chain: str, seq: int, head_hash: str, signed_at: str) -> SignedHead:
    signature = key.sign(head_payload(chain, seq, head_hash, signed_at))
    return SignedHead(chain, seq, head_hash, signed_at, base64.b64encode(signature).decode("ascii"))


@dataclass(frozen=True)
class Problem:
    """Something that does not check out, in words an auditor can act on."""

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
    """Signed heads that checked out."""
    segments: int = 0
    unsigned_recent: int = 0
    """Events sealed moments ago whose signed head is not visible yet (within the grace)."""
    exported_heads: int = 0
    """Heads kept outside the broker that were checked against the chains."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Freshness:
    """How long an event may wait for its signed head: ``now`` and the ``grace`` allowed.

    The broker signs a chain's head as it seals events into it, so a sealed event
    without a signed head is only ever seen by a reader racing the sealer; past
    the grace it was appended without the key. Bundles allow no grace at all.
    """

    now: datetime
    grace: timedelta

    def too_old(self, at: str) -> bool:
        try:
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            return True
        return moment < self.now - self.grace


@dataclass
class ChainCheck:
    """One chain's verification: its problems, how far signed heads cover it, and how many waited."""

    problems: list[Problem]
    signed_seq: int
    unsigned_recent: int
    heads_valid: int


def verify_chain(
    chain: str,
    events: Iterable[ChainEvent],
    heads: Iterable[SignedHead],
    key: Ed25519PublicKey,
    freshness: Freshness | None = None,
    *,
    after: tuple[int, str] = (0, GENESIS),
) -> ChainCheck:
    """Recompute one chain, check its signed heads and that they cover it to its end.

    ``freshness``: a sealed event after the last signed head is accepted only while
    younger than its grace (for readers that may race the sealer); None (a bundle, or
    the broker reading its own trail at rest): every event must be covered.
    ``after``: ``events`` continue a part already verified, which ended at this
    (seq, hash); only heads beyond it are checked.
    """
    problems: list[Problem] = []
    ordered = sorted(events, key=lambda e: (e.seq, e.id))
    by_seq: dict[int, ChainEvent] = {}
    expected_seq, previous_hash = after[0] + 1, after[1]
    for event in ordered:
        if event.seq in by_seq:
            problems.append(Problem(chain, event.seq, event.id, "a second event with this number was inserted"))
            continue
        if event.chain != chain:
            problems.append(Problem(chain, event.seq, event.id, f"belongs to chain {event.chain}, not to this one"))
        if event.seq > expected_seq:
            missing = f"{expected_seq}" if event.seq == expected_seq + 1 else f"{expected_seq}-{event.seq - 1}"
            problems.append(Problem(chain, expected_seq, None, f"event {missing} was deleted"))
        elif event.prev_hash != previous_hash:
            problems.append(Problem(chain, event.seq, event.id,
                                    "does not follow the event before it (reordered, or one was inserted or deleted)"))
        if not event.hashes_right():
            problems.append(Problem(chain, event.seq, event.id, f"was edited ({event.kind} no longer matches its hash)"))
        by_seq[event.seq] = event
        previous_hash = event.hash
        expected_seq = event.seq + 1
    signed_seq, valid = after[0], 0
    for head in sorted((h for h in heads if h.seq > after[0]), key=lambda h: h.seq):
        if head.chain != chain or not head.signed_by(key):
            problems.append(Problem(chain, head.seq, None, "a signed head's signature is not the broker's"))
            continue
        held = by_seq.get(head.seq)
        if held is None:
            problems.append(Problem(chain, head.seq, None,
                                    f"the broker signed {head.seq} events here, but the chain ends before (events were deleted)"))
        elif held.hash != head.head_hash:
            problems.append(Problem(chain, head.seq, held.id,
                                    "differs from what the broker signed at that point (the chain was rewritten)"))
        else:
            valid += 1
            signed_seq = max(signed_seq, head.seq)
    unsigned_recent = 0
    uncovered = [e for e in by_seq.values() if e.seq > signed_seq]
    for event in sorted(uncovered, key=lambda e: e.seq):
        if freshness is not None and not freshness.too_old(event.at):
            unsigned_recent += 1
            continue
        problems.append(Problem(chain, event.seq, event.id, "no signed head covers it: it was appended without "
                                "the broker's key (or, in a bundle, the bundle was cut short or extended)"))
        break  # one names the place; every later event is uncovered too
    problems.sort(key=lambda p: p.seq if p.seq is not None else 0)
    return ChainCheck(problems, signed_seq, unsigned_recent, valid)


def check_commitments(broker_events: Iterable[ChainEvent], chains: Mapping[str, Sequence[ChainEvent]]) -> list[Problem]:
    """What the broker chain says of session chains (opened, closed at a head) against the chains held.

    A session deleted whole (its events, heads and recording) leaves these
    commitments behind in the broker chain, which cannot be rewritten without the key.
    """
    problems: list[Problem] = []
    hashes = {name: {e.seq: e.hash for e in events} for name, events in chains.items()}
    for event in broker_events:
        if event.kind not in (CHAIN_OPENED, CHAIN_CLOSED):
            continue
        name = str(event.data.get("chain", ""))
        seq, expected = (1, event.data.get("first_hash")) if event.kind == CHAIN_OPENED else (
            event.data.get("seq"), event.data.get("head"))
        held = hashes.get(name)
        if not held:
            problems.append(Problem(BROKER_CHAIN, event.seq, event.id,
                                    f"session {name}'s trail is gone (the broker chain recorded it here)"))
        elif (held.get(seq) if isinstance(seq, int) else None) != expected:
            problems.append(Problem(BROKER_CHAIN, event.seq, event.id,
                                    f"session {name}'s chain differs at event {seq} from what the broker chain recorded"))
    return problems


def check_exported_heads(
    heads: Iterable[SignedHead], chains: Mapping[str, Sequence[ChainEvent]], key: Ed25519PublicKey,
    *, only: str | None = None,
) -> tuple[list[Problem], int]:
    """Heads kept outside the broker against the chains held; the problems and how many heads applied.

    Each head, signed by ``key``, fixes its chain up to its event: the chain must
    still hold that event with that hash (and verify to it, which
    :func:`verify_chain` checks). ``only``: the chains are a snapshot of that one
    chain (a bundle): other chains' heads do not apply, nor do heads signed after
    the snapshot's last event, which it cannot be compared with.
    """
    problems: list[Problem] = []
    applied = 0
    for head in heads:
        if only is not None and (head.chain != only or head.seq > max((e.seq for e in chains.get(only, ())), default=0)):
            continue
        applied += 1
        if not head.signed_by(key):
            problems.append(Problem(head.chain, head.seq, None, "a head in the heads file is not signed by the broker's key"))
            continue
        events = chains.get(head.chain)
        held = next((e for e in events or () if e.seq == head.seq), None)
        if not events:
            problems.append(Problem(head.chain, None, None,
                                    f"the chain is gone, though a head signed at {head.signed_at} covers {head.seq} events of it"))
        elif held is None:
            problems.append(Problem(head.chain, head.seq, None,
                                    f"the chain ends before event {head.seq}, which a head signed at {head.signed_at} covers "
                                    "(events were deleted)"))
        elif held.hash != head.head_hash:
            problems.append(Problem(head.chain, head.seq, held.id,
                                    f"differs from the head signed at {head.signed_at} and kept outside (the chain was rewritten)"))
    return problems, applied


def judge_head(
    chain: str, head: SignedHead | None, head_event: ChainEvent | None, last_sealed_seq: int, key: Ed25519PublicKey,
) -> str | None:
    """Whether the broker may seal and sign on top of ``chain``; None, or why not.

    Before it signs, the broker checks the chain from its last signed head: the
    head must be its own signature over the event still at that place with that
    hash, and nothing may be sealed beyond it (sealing and signing happen in one
    transaction, so whatever is there was appended by someone without the key).
    """
    if head is None:
        return None if last_sealed_seq == 0 else f"{last_sealed_seq} sealed events, but no signed head covers them"
    if not head.signed_by(key):
        return f"the signed head at event {head.seq} is not signed by this broker's key"
    if head_event is None:
        return f"event {head.seq}, which the broker signed, is gone"
    if head_event.hash != head.head_hash or not head_event.hashes_right():
        return f"event {head.seq} differs from what the broker signed (rewritten)"
    if last_sealed_seq > head.seq:
        return f"events {head.seq + 1}-{last_sealed_seq} were sealed after the last signed head, without the broker's key"
    return None


def segment_index(event: ChainEvent) -> int:
    """The segment number a ``recording.segment`` event names (-1 when it names none)."""
    index = event.data.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else -1


def segment_problem(chain: str, event: ChainEvent, actual_sha256: str | None, *, stored: bool) -> Problem | None:
    """Check one recording segment against the event that recorded its hash.

    ``stored``: ``actual_sha256`` is of the encrypted file as the broker keeps it
    (``stored_sha256``); otherwise of the segment as recorded (``sha256``, as in a bundle).
    """
    expected = event.data.get("stored_sha256" if stored else "sha256")
    if actual_sha256 is None:
        return Problem(chain, event.seq, event.id, f"recording segment {segment_index(event)} is missing")
    if actual_sha256 != expected:
        return Problem(chain, event.seq, event.id, f"recording segment {segment_index(event)} was altered")
    return None
