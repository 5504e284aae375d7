"""A session's trail as verified: what playback, export and reports are built from, and nothing else.

A recording is played and exported from the ``recording.segment`` events of a
chain that verifies and that a signed head covers (their order, offsets and
hashes), with each stored file checked against its event before it is
decrypted. The ``recording_segments`` table serves the upload protocol only:
editing it changes nothing anyone sees.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from .chain import ChainEvent, Problem, SignedHead
from .keys import BrokerKeys
from .recordings import RecordingStore, SegmentUnreadable, concatenate
from .trail import SEGMENT_KIND, load_chains, verify_loaded


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

    @property
    def duration_ms(self) -> int:
        return max((s.offset_ms + s.duration_ms for s in self.segments), default=0)


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


def segment_refs(chain: str, events: list[ChainEvent]) -> list[SegmentRef]:
    """The recording's segments in the order they play; raises :class:`TrailBroken` on a contradiction."""
    refs: dict[int, SegmentRef] = {}
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


def segment_bytes(db: Session, store: RecordingStore, verified: VerifiedSession, ref: SegmentRef) -> bytes:
    """One segment as recorded, read only if the stored file and its plaintext match the chain."""
    key = store.data_key(db, verified.session_id)
    try:
        return store.read_checked(verified.session_id, ref.index, key, stored_sha256=ref.stored_sha256, sha256=ref.sha256)
    except SegmentUnreadable as exc:
        raise TrailBroken(verified.session_id, [Problem(verified.session_id, None, None, str(exc))]) from None


def recording(db: Session, store: RecordingStore, verified: VerifiedSession) -> bytes:
    """The session's recording as one WebM, joined at the chained offsets (gaps stay gaps)."""
    if not verified.segments:
        return b""
    key = tuple((s.index, s.offset_ms, s.stored_sha256) for s in verified.segments)
    return store.joined(verified.session_id, key, lambda: concatenate(
        (ref.offset_ms, segment_bytes(db, store, verified, ref)) for ref in verified.segments))
