"""Recording segments and session events, as the peers report them for the audit trail.

Both take the peer's own token. They stay open for a while after the session
ended (``DESKHAND_RECORDING_UPLOAD_GRACE_SECONDS``), so that a host can upload
what it spooled while the broker was unreachable, and nothing is lost.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute, Session
from starlette.concurrency import run_in_threadpool

from broker.accounts.access import SessionPeerAccess
from broker.audit import events as audit
from broker.audit import peer_events
from broker.audit.recording_timeline import SegmentSpan, misplacement, placed_offset_ms
from broker.audit.recordings import IncomingSegment, SegmentUnreadable, StagedSegment
from broker.audit.segment_check import SegmentInvalid, check_segment
from broker.clock import utcnow
from broker.deps import PeerToken, SessionId, State
from broker.refusals import Conflict, Forbidden, Invalid, RateLimited, TooLarge
from broker.server.json_bodies import BoundedJsonRoute
from broker.server.request_limits import body_limit
from broker.sessions.peers import SessionPeer, identify_peer
from broker.sessions.session_usage import SessionUsage, charge
from broker.state import BrokerState
from broker.storage.models import RecordingSegment, SupportSession
from protocol.recording import (
    MAX_EVENT_BATCH_BYTES,
    MAX_SEGMENT_BYTES,
    RECORDING_ORIGIN_LIMIT_MS,
    PeerEvents,
    PeerEventsStored,
    RecordingStatus,
    SegmentRecorderName,
    SegmentRepeatUpload,
)
from protocol.segment_continuation import ContinuationImpossible, continued_segment
from protocol.segment_repeat import RepeatImpossible, repeat_segment
from protocol.signalling import Role
from protocol.transfers import SHA256_PATTERN

router = APIRouter(
    prefix="/sessions/{session_id}", tags=["recording"], dependencies=[SessionPeerAccess], route_class=BoundedJsonRoute,
)
SegmentIndex = Annotated[int, Path(ge=0, lt=10_000_000, description="Segment number, from 0")]
SegmentSha256 = Annotated[str, Header(pattern=SHA256_PATTERN, description="The SHA-256 of the segment's bytes")]
SegmentOffsetMs = Annotated[int, Header(ge=0, lt=2**40, description="Where the segment starts, in ms from the origin")]
SegmentDurationMs = Annotated[int, Header(ge=0, lt=3_600_000, description="How long the segment lasts, in ms")]
RecordingOriginMs = Annotated[int | None, Header(
    ge=0, lt=RECORDING_ORIGIN_LIMIT_MS,
    description="When the host started recording (Unix ms, its clock); the offset counts from it",
)]
SegmentRecorder = Annotated[SegmentRecorderName | None, Header(
    description="What recorded the segment when it is not the Deskhand host: `browser`, the join page "
    "(the host's claim, kept in the segment's `recording.segment` event as `recorder`)",
)]


@dataclass(frozen=True)
class SegmentUpload:
    """What a host says of the segment it uploads (its headers)."""

    index: int
    sha256: str
    offset_ms: int
    duration_ms: int
    origin_ms: int | None
    """When the host started recording, if it says (older hosts do not)."""
    recorder: SegmentRecorderName | None = None
    """What recorded it, when not the Deskhand host (``browser``: the join page)."""


def declared_segment(
    index: SegmentIndex,
    x_segment_sha256: SegmentSha256,
    x_segment_offset_ms: SegmentOffsetMs,
    x_segment_duration_ms: SegmentDurationMs,
    x_recording_origin_ms: RecordingOriginMs = None,
    x_segment_recorder: SegmentRecorder = None,
) -> SegmentUpload:
    """What an upload's path and ``X-Segment-*`` headers say of the segment (checked by their types)."""
    return SegmentUpload(index, x_segment_sha256, x_segment_offset_ms, x_segment_duration_ms, x_recording_origin_ms,
                         x_segment_recorder)


DeclaredSegment = Annotated[SegmentUpload, Depends(declared_segment)]


def _peer(state: BrokerState, db: Session, session_id: str, token: str | None, what: str) -> SessionPeer:
    grace = timedelta(seconds=state.settings.recording_upload_grace_seconds)
    return identify_peer(db, session_id, token, what=what, ended_grace=grace)


@router.put("/recording/{index}", status_code=204, summary="Upload one recording segment (host)",
            openapi_extra=body_limit(MAX_SEGMENT_BYTES))
async def put_segment(
    session_id: SessionId,
    index: SegmentIndex,
    request: Request,
    state: State,
    upload: DeclaredSegment,
    token: PeerToken,
) -> Response:
    # No database session is open while the body streams in, nor while it is checked and
    # encrypted: only the short unit of work that records it, around a rename.
    await _host_uploading(state, session_id, token)
    async with _segment_body(state, request) as incoming:
        if incoming.sha256 != upload.sha256:
            raise Invalid("segment_rejected", f"segment {index} does not match its SHA-256; send it again")

        def prepare() -> StagedSegment:
            data = incoming.read()
            try:
                check_segment(data, upload.duration_ms)
            except SegmentInvalid as bad:
                raise Invalid(
                    "segment_invalid", f"segment {index} is not a recording segment as a host makes it: {bad}",
                ) from None
            return state.recordings.stage(session_id, index, data, key)

        # The session's recording key, created on first use (by another upload, perhaps, at the same moment).
        key = await state.unit(lambda db: state.recordings.data_key(db, session_id), again_on=(IntegrityError,))
        staged = await run_in_threadpool(prepare)  # no database: needs no slot
        size = incoming.size
    await _store_staged(state, session_id, upload, staged, size)
    return Response(status_code=204)


@router.put("/recording/{index}/repeat", status_code=204,
            summary="Store a segment that repeats a stored segment's picture, rebuilt by the broker (host)")
async def put_repeated_segment(
    session_id: SessionId, index: SegmentIndex, body: SegmentRepeatUpload, state: State, token: PeerToken,
) -> Response:
    # A still screen's segment copies an earlier segment's packets at its own frame times; the broker
    # makes those bytes from the segment it holds, with the recorder's own code, and stores them only
    # if they are the bytes the host committed to (their SHA-256): from then on, a segment like any other.
    await _host_uploading(state, session_id, token)
    upload = SegmentUpload(index, body.sha256, body.offset_ms, body.duration_ms, body.origin_ms)
    await _store_rebuilt(state, session_id, upload, body.source, REPEAT,
                         lambda source: repeat_segment(source, body.fps, body.frames_ms))
    return Response(status_code=204)


@router.put("/recording/{index}/continue", status_code=204,
            summary="Store a segment by its own frames, after a stored segment's keyframe, rebuilt by the broker (host)",
            openapi_extra=body_limit(MAX_SEGMENT_BYTES))
async def put_continued_segment(
    session_id: SessionId,
    index: SegmentIndex,
    request: Request,
    state: State,
    x_segment_source: Annotated[int, Header(
        ge=0, lt=10_000_000, description="The stored segment whose keyframe this one continues from",
    )],
    upload: DeclaredSegment,
    token: PeerToken,
) -> Response:
    # A changing screen's segment encoded after an earlier segment's keyframe: the body is its own
    # frames (a WebM), the broker puts the source's keyframe, hidden, in front of them with the
    # recorder's own code, and stores the result only if it hashes to what the host committed to.
    await _host_uploading(state, session_id, token)
    async with _segment_body(state, request) as incoming:
        await _store_rebuilt(state, session_id, upload, x_segment_source, CONTINUATION,
                             lambda source: continued_segment(source, incoming.read()))
    return Response(status_code=204)


@asynccontextmanager
async def _segment_body(state: BrokerState, request: Request) -> AsyncIterator[IncomingSegment]:
    """The request's body in a temporary file as it arrives (never all in memory), refused past
    ``DESKHAND_SEGMENT_MAX_BYTES``; the file is gone afterwards."""
    most = state.settings.segment_max_bytes
    with state.recordings.receive() as incoming:
        async for piece in request.stream():
            incoming.write(piece)
            if incoming.size > most:
                raise TooLarge("too_large", f"a segment is at most {most} bytes")
        yield incoming


async def _host_uploading(state: BrokerState, session_id: str, token: str | None) -> None:
    peer = await _verified_peer(state, session_id, token, "upload the recording")
    if peer.role is not Role.host:
        raise Forbidden("not_allowed", "only the host uploads the recording")


@dataclass(frozen=True)
class Rebuild:
    """One way the broker makes a segment's bytes from a stored one: its name in error codes, what it
    does to the source (in messages), and what it raises when it cannot."""

    code: str
    verb: str
    impossible: type[Exception]


REPEAT = Rebuild("repeat", "repeat", RepeatImpossible)
CONTINUATION = Rebuild("continuation", "continue from", ContinuationImpossible)


async def _store_rebuilt(state: BrokerState, session_id: str, upload: SegmentUpload, source_index: int,
                         rebuild: Rebuild, make: Callable[[bytes], bytes]) -> None:
    """Make segment ``upload.index`` from stored segment ``source_index`` (``make`` of its plain bytes) and
    store it if it hashes to ``upload.sha256``; a retry of a stored one is a success."""
    index = upload.index
    if source_index >= index:
        raise Invalid(f"{rebuild.code}_invalid",
                      f"segment {index} can only {rebuild.verb} an earlier segment, not segment {source_index}")

    def find_source(db: Session) -> tuple[bytes, RecordingSegment] | None:
        existing = db.get(RecordingSegment, (session_id, index))
        if existing is not None:
            if existing.sha256 != upload.sha256:
                raise Conflict("segment_exists", f"segment {index} was already stored with other content")
            return None  # a retry of one stored before
        source = db.get(RecordingSegment, (session_id, source_index))
        if source is None:
            raise Conflict(
                f"{rebuild.code}_source_missing",
                f"segment {source_index} of this session is not stored, so segment {index} cannot {rebuild.verb} it; "
                "upload it whole",
            )
        db.expunge(source)
        return state.recordings.data_key(db, session_id), source

    found = await state.unit(find_source)
    if found is None:
        return
    key, source = found

    def rebuilt() -> tuple[StagedSegment, int]:
        try:
            plain = state.recordings.read_checked(
                session_id, source.index, key, stored_sha256=source.stored_sha256, sha256=source.sha256,
            )
            data = make(plain)
        except (SegmentUnreadable, rebuild.impossible) as bad:
            raise Invalid(
                f"{rebuild.code}_impossible",
                f"segment {index} cannot be made from segment {source_index} ({bad}); upload it whole",
            ) from None
        if len(data) > state.settings.segment_max_bytes:
            raise TooLarge("too_large", f"a segment is at most {state.settings.segment_max_bytes} bytes")
        if hashlib.sha256(data).hexdigest() != upload.sha256:
            raise Invalid(
                f"{rebuild.code}_mismatch",
                f"segment {index} made from segment {source_index} does not match its SHA-256; upload it whole",
            )
        try:
            check_segment(data, upload.duration_ms)
        except SegmentInvalid as bad:
            raise Invalid(
                "segment_invalid", f"segment {index} is not a recording segment as a host makes it: {bad}",
            ) from None
        return state.recordings.stage(session_id, index, data, key), len(data)

    staged, size = await run_in_threadpool(rebuilt)  # no database: needs no slot
    await _store_staged(state, session_id, upload, staged, size)


async def _store_staged(state: BrokerState, session_id: str, upload: SegmentUpload, staged: StagedSegment, size: int) -> None:
    """Record a staged segment (:func:`_record_segment`); its temporary file is gone afterwards either way."""
    try:
        await state.unit(lambda db: _record_segment(db, state, session_id, upload, staged, size))
    finally:
        staged.discard()



def _record_segment(
    db: Session, state: BrokerState, session_id: str, upload: SegmentUpload, staged: StagedSegment, size: int,
) -> None:
    """Record a checked, staged segment in one short unit of work: place it and add its row and event."""
    index = upload.index
    origin_ms = _claim_origin(db, session_id, upload.origin_ms)
    existing = db.get(RecordingSegment, (session_id, index))
    if existing is not None:
        if existing.sha256 != upload.sha256:
            raise Conflict("segment_exists", f"segment {index} was already stored with other content")
        return
    span = SegmentSpan(index, placed_offset_ms(upload.offset_ms, upload.origin_ms, origin_ms), upload.duration_ms)
    problem = misplacement(span, *_neighbours(db, session_id, index))
    if problem is not None:
        raise Conflict(
            "segment_misplaced", f"{problem}; recording time only moves forward, so the broker keeps what it holds. "
            "Restart the host with 'deskhand-host resume': it continues after what the broker holds",
        )
    charge(db, session_id, SessionUsage(recording_bytes=size, recording_segments=1), state.settings.session_quotas)
    staged.place()
    db.add(RecordingSegment(
        session_id=session_id, index=index, offset_ms=span.offset_ms, duration_ms=span.duration_ms,
        size=size, sha256=upload.sha256, stored_sha256=staged.stored_sha256, received_at=utcnow(),
    ))
    data: dict[str, object] = {
        "index": index, "sha256": upload.sha256, "stored_sha256": staged.stored_sha256, "size": size,
        "offset_ms": span.offset_ms, "duration_ms": span.duration_ms, "origin_ms": origin_ms,
    }
    if upload.recorder is not None:  # not the Deskhand host: the host's claim, like the bytes
        data["recorder"] = upload.recorder
    audit.record_data(db, "recording.segment", data, actor=audit.host_actor(session_id), session_id=session_id)


def _claim_origin(db: Session, session_id: str, declared_ms: int | None) -> int | None:
    """The session's recording origin, taking ``declared_ms`` when it has none yet.

    Written first in the unit of work on purpose: the write locks the session's row
    (the whole database, in SQLite) until the commit, so two uploads of one session
    are checked against each other's segments one after the other, never side by side.
    """
    db.execute(
        update(SupportSession).where(SupportSession.id == session_id)
        .values(recording_origin_ms=func.coalesce(SupportSession.recording_origin_ms, declared_ms))
    )
    return db.scalar(select(SupportSession.recording_origin_ms).where(SupportSession.id == session_id))


def _neighbours(db: Session, session_id: str, index: int) -> tuple[SegmentSpan | None, SegmentSpan | None]:
    """The stored segments numbered just below and just above ``index``."""
    def nearest(*conditions: ColumnElement[bool], order: ColumnElement[Any] | QueryableAttribute[Any]) -> SegmentSpan | None:
        row = db.execute(
            select(RecordingSegment.index, RecordingSegment.offset_ms, RecordingSegment.duration_ms)
            .where(RecordingSegment.session_id == session_id, *conditions).order_by(order).limit(1)
        ).first()
        return SegmentSpan(*row) if row is not None else None

    return (
        nearest(RecordingSegment.index < index, order=RecordingSegment.index.desc()),
        nearest(RecordingSegment.index > index, order=RecordingSegment.index),
    )


@router.get("/recording", response_model=RecordingStatus, summary="What the broker holds of the recording (host)")
async def recording_status(session_id: SessionId, state: State, token: PeerToken) -> RecordingStatus:
    def status(db: Session) -> RecordingStatus:
        peer = _peer(state, db, session_id, token, "read the recording status")
        count, last, end = db.execute(
            select(
                func.count(), func.max(RecordingSegment.index),
                func.max(RecordingSegment.offset_ms + RecordingSegment.duration_ms),
            ).where(RecordingSegment.session_id == session_id)
        ).one()
        return RecordingStatus(
            segments=count, next_index=(last + 1) if last is not None else 0, end_ms=end or 0,
            origin_ms=peer.session.recording_origin_ms,
        )

    return await state.unit(status)


@router.post(
    "/events", response_model=PeerEventsStored,
    summary="Report session events for the audit trail (both peers); each event id is stored once",
    openapi_extra=body_limit(MAX_EVENT_BATCH_BYTES),
)
async def report_events(session_id: SessionId, body: PeerEvents, state: State, token: PeerToken) -> PeerEventsStored:
    peer = await _verified_peer(state, session_id, token, "report events")
    peer_events.check_reportable(peer, body.events, keystroke_logging=state.settings.session_policy.keystroke_logging)
    # Per peer: one peer's flood never holds back the other's events.
    wait = await state.peer_event_rates.take(f"{session_id} {peer.actor}", len(body.events))
    if wait is not None:
        raise RateLimited(
            "rate_limited", f"more than {state.settings.peer_event_burst} events at once or {state.settings.peer_events_per_second:g} "
            f"a second from one peer; send them again in {wait} s", retry_after=wait,
        )

    # The whole batch in one unit of work: one transaction, one INSERT. Again when a copy of this
    # batch (the peer's retry) stored some of the ids first: now they are found.
    return await state.unit(
        lambda db: peer_events.store_reported(db, peer, body.events, state.settings.session_quotas),
        again_on=(IntegrityError,),
    )


async def _verified_peer(state: BrokerState, session_id: str, token: str | None, what: str) -> SessionPeer:
    """The peer ``token`` speaks for: from the :class:`~broker.sessions.peers.PeerCache` when verified lately,
    else looked up in a short unit of work of its own. Either way no database session is open
    once this returns, however long the request goes on (a segment's body still arriving)."""
    now, generation = time.monotonic(), state.peers.generation
    peer = state.peers.get(session_id, token, now) if token else None
    if peer is not None:
        return peer

    peer = await state.unit(lambda db: _peer(state, db, session_id, token, what))
    if token:
        state.peers.put(session_id, token, peer, now, generation)
    return peer
