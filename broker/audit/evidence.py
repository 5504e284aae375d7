"""A session's trail as verified: what playback, export and reports are built from, and nothing else.

A recording is played and exported from the ``recording.segment`` events of a
chain that verifies and that a signed head covers (their order, offsets and
hashes), with each stored file checked against its event before it is
decrypted. The ``recording_segments`` table serves the upload protocol only:
editing it changes nothing anyone sees.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from broker.audit.chain import GENESIS, ChainEvent, Problem, SignedHead, verify_chain
from broker.audit.recordings import RecordingStore, SegmentUnreadable, concatenate
from broker.audit.trail import SEGMENT_KIND, as_signed_head, load_chain_after, load_chains, verify_loaded
from broker.keys import BrokerKeys
from broker.storage.models import AuditHead


class TrailBroken(Exception):
    """A session's trail does not verify, so nothing is played or exported from it."""

    def __init__(self, session_id: str, problems: list[Problem]) -> None:
        self.session_id = session_id
        self.problems = problems
        super().__init__(f"the audit trail of session {session_id} does not verify: {problems[0]}")


@dataclass(frozen=True)
class SegmentRef:
    """One recording segment as its chained event describes it."""

    index: int
    offset_ms: int
    duration_ms: int
    size: int
    sha256: str
    """Of the segment as recorded."""
    stored_sha256: str
    """Of the encrypted file the broker keeps."""


@dataclass(frozen=True)
class VerifiedSession:
    """A session's events up to its signed head, that head, and its recording's segments."""

    session_id: str
    events: list[ChainEvent]
    head: SignedHead | None
    segments: list[SegmentRef]


def verify_session(db: Session, keys: BrokerKeys, session_id: str) -> VerifiedSession:
    """The session's chain, checked (events and signed head); raises :class:`TrailBroken`.

    Read it from a trail at rest (:meth:`broker.deps.BrokerState.sealed_trail`): every
    sealed event must be covered by the signed head. Segment files are not read here:
    :func:`segment_bytes` checks each one as it reads it.
    """
    trail = load_chains(db, session_id)
    verdict = verify_loaded(trail, keys.public_key, None, freshness=None, only=session_id)
    if not verdict.ok:
        raise TrailBroken(session_id, verdict.problems)
    heads = trail.heads.get(session_id, [])
    head = max(heads, key=lambda h: h.seq) if heads else None
    covered = [e for e in trail.events.get(session_id, []) if head is not None and e.seq <= head.seq]
    return VerifiedSession(session_id, covered, head, segment_refs(session_id, covered))


def segment_refs(chain: str, events: Iterable[ChainEvent], known: Iterable[SegmentRef] = ()) -> list[SegmentRef]:
    """The recording's segments (``known`` ones and those ``events`` add) in the order they play;
    raises :class:`TrailBroken` on a contradiction."""
    refs: dict[int, SegmentRef] = {ref.index: ref for ref in known}
    for event in events:
        if event.kind != SEGMENT_KIND:
            continue
        data = event.data
        try:
            ref = SegmentRef(int(data["index"]), int(data["offset_ms"]), int(data["duration_ms"]), int(data["size"]),
                             str(data["sha256"]), str(data["stored_sha256"]))
        except (KeyError, TypeError, ValueError):
            raise TrailBroken(chain, [Problem(chain, event.seq, event.id, "a recording.segment event is incomplete")]) from None
        if ref.index in refs:
            raise TrailBroken(chain, [Problem(chain, event.seq, event.id, f"recording segment {ref.index} was recorded twice")])
        refs[ref.index] = ref
    return sorted(refs.values(), key=lambda r: (r.offset_ms, r.index))


def segment_bytes(db: Session, store: RecordingStore, session_id: str, ref: SegmentRef) -> bytes:
    """One segment as recorded, read only if the stored file and its plaintext match the chain."""
    key = store.data_key(db, session_id)
    try:
        return store.read_checked(session_id, ref.index, key, stored_sha256=ref.stored_sha256, sha256=ref.sha256)
    except SegmentUnreadable as exc:
        raise TrailBroken(session_id, [Problem(session_id, None, None, str(exc))]) from None


def recording(db: Session, store: RecordingStore, session_id: str, segments: Sequence[SegmentRef]) -> bytes:
    """The session's recording as one WebM, joined at the chained offsets (gaps stay gaps)."""
    if not segments:
        return b""
    key = tuple((s.index, s.offset_ms, s.stored_sha256) for s in segments)
    return store.joined(session_id, key, lambda: concatenate(
        (ref.offset_ms, segment_bytes(db, store, session_id, ref)) for ref in segments))


@dataclass(frozen=True)
class _Verified:
    seq: int
    hash: str
    segments: tuple[SegmentRef, ...]


VERIFIED_KEPT = 16
"""Sessions whose verified recording segments a broker keeps for players."""


class VerifiedRecordings:
    """The recording segments of sessions verified lately, extended as their chains grow.

    A player asks for a recording in many byte ranges, and each answer must come from
    verified data; verifying an hour-long session's whole chain again for each costs a
    third of a second (``bench/audit_trail.py``). What was verified stays so: a later
    request checks the events sealed since (their link to the verified part, their
    hashes, the signed head over them) and adds their segments. A head that does not
    extend the verified part (rewritten, cut back) means verifying from the start.
    """

    def __init__(self, kept: int = VERIFIED_KEPT) -> None:
        self._kept = kept
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def segments(self, db: Session, keys: BrokerKeys, session_id: str) -> tuple[SegmentRef, ...]:
        """The session's segments as its chain says, verified to its signed head; raises :class:`TrailBroken`.

        Read from a trail at rest (:meth:`broker.deps.BrokerState.sealed_trail`).
        """
        row = db.get(AuditHead, session_id)
        head = as_signed_head(row) if row is not None else None
        with self._lock:
            known = self._verified.get(session_id)
        unchanged = known is not None and head is not None and (head.seq, head.head_hash) == (known.seq, known.hash)
        if known is None or head is None or (head.seq <= known.seq and not unchanged):
            known = _Verified(0, GENESIS, ())
        # Also when the head did not move: an event sealed beyond it was appended without the key.
        events = load_chain_after(db, session_id, known.seq)
        if unchanged and not events:
            return known.segments
        check = verify_chain(session_id, events, [head] if head is not None else [], keys.public_key,
                             after=(known.seq, known.hash))
        if check.problems:
            raise TrailBroken(session_id, check.problems)
        if head is None:
            return ()
        verified = _Verified(head.seq, head.head_hash, tuple(segment_refs(session_id, events, known.segments)))
        with self._lock:
            self._verified[session_id] = verified
            self._verified.move_to_end(session_id)
            while len(self._verified) > self._kept:
                self._verified.popitem(last=False)
        return verified.segments
