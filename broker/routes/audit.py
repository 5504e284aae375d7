"""The auditors' side: sessions, reports, recordings, exports, and whole-trail verification.

Every playback and every export is itself recorded in the trail, by a POST: no GET
here changes anything, so no other site can have one recorded in an auditor's name.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool

from broker.accounts.access import AuditExporter, AuditReader, RecordingViewer
from broker.audit import events as audit
from broker.audit import evidence
from broker.audit.bundles import write_bundle
from broker.audit.evidence import SegmentRef, TrailBroken, VerifiedSession, verify_session
from broker.audit.heads import heads_document
from broker.audit.playbacks import PLAYBACK_IDLE_SECONDS
from broker.audit.reports import session_report
from broker.audit.trail import load_chains, verify_loaded
from broker.deps import DB, SessionId, Source, State
from broker.refusals import Busy, Conflict, Forbidden, Invalid, NotFound, not_found
from broker.serializers import session_out
from broker.sessions.support_sessions import get_session
from broker.state import BrokerState
from broker.storage.models import SupportSession, User
from protocol.api import API_PREFIX, PlaybackStarted, SessionOut

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/sessions", response_model=list[SessionOut], summary="Sessions, newest first, with filters")
def sessions(
    db: DB,
    _auditor: AuditReader,
    technician: Annotated[str | None, Query(max_length=64, description="technician's username")] = None,
    ticket: Annotated[int | None, Query(gt=0, lt=2**62)] = None,
    host: Annotated[str | None, Query(max_length=253, description="part of the host's machine or user name")] = None,
    since: Annotated[datetime | None, Query(description="created at or after; without a zone: UTC")] = None,
    until: Annotated[datetime | None, Query(description="created at or before; without a zone: UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SessionOut]:
    query = select(SupportSession).options(selectinload(SupportSession.technician)).order_by(SupportSession.created_at.desc())
    if technician:
        query = query.join(User, User.id == SupportSession.technician_id).where(User.username == technician)
    if ticket:
        query = query.where(SupportSession.ticket_id == ticket)
    if host:
        like = f"%{host}%"
        query = query.where(SupportSession.host_machine_name.like(like) | SupportSession.host_user_name.like(like))
    if since:
        query = query.where(SupportSession.created_at >= _utc(since, "since"))
    if until:
        query = query.where(SupportSession.created_at <= _utc(until, "until"))
    return [session_out(s) for s in db.scalars(query.limit(limit))]


def _utc(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC, as the stored times are; without a zone it is taken as UTC. 422 for a
    moment with no date in UTC (0001-01-01 in a zone east of it, 9999-12-31 west of it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise Invalid("invalid_request", f"{name}: {moment.isoformat()} has no date in UTC") from None


# The routes below read the trail at rest: several units of work in a row, the trail sealed first
# (``state.sealed_trail``), then what is read, verified or audited, each its own transaction. They run
# in one worker thread (a plain ``def`` route, or ``run_in_threadpool`` for the long ones) and take no
# slot of their own: the auditor's ``DB`` holds one for the request (``Lane.held``, broker/storage/db_slots.py).


def _session(db: DB, session_id: str) -> SupportSession:
    session = get_session(db, session_id)
    if session is None:
        raise not_found(f"session {session_id}")
    return session


@router.get("/sessions/{session_id}/report", summary="Participants, consent, chat, files, timeline and integrity")
def report(session_id: SessionId, state: State, _auditor: AuditReader) -> dict[str, Any]:
    with state.sealed_trail() as db:
        trail = load_chains(db, session_id)  # consistent while the sealer waits; the rest need not be
    with state.database.session() as db:
        session = _session(db, session_id)
        return session_report(db, state.keys, state.recordings, session, trail)


RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` of a single ``Range: bytes=…`` header within ``size`` bytes; None for the
    whole body (no header, or one we do not serve partially, such as several ranges); raises
    ValueError when the range lies outside the body (416)."""
    match = RANGE.match(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":  # the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise ValueError("range outside the recording")
    return first, last


def trail_broken(exc: TrailBroken) -> Conflict:
    """The answer to a trail that does not verify, naming each problem."""
    return Conflict(
        "trail_does_not_verify", f"{exc}. Nothing is played or exported from a trail that does not verify; "
        "run 'deskhand-broker audit verify' for every problem",
        detail={"problems": [str(p) for p in exc.problems]},
    )


def _verified(state: BrokerState, session_id: str) -> VerifiedSession:
    """The session's whole trail, sealed to now and verified strictly (404 unknown, 409 broken)."""
    with state.sealed_trail() as db:
        _session(db, session_id)
        try:
            return verify_session(db, state.keys, session_id)
        except TrailBroken as exc:
            raise trail_broken(exc) from None


def _verified_segments(state: BrokerState, session_id: str) -> Sequence[SegmentRef]:
    """The session's recording segments, verified to the signed head sealed just now (404, 409)."""
    with state.sealed_trail() as db:
        _session(db, session_id)
        try:
            return state.verified_recordings.segments(db, state.keys, session_id)
        except TrailBroken as exc:
            raise trail_broken(exc) from None


def _recording_bytes(state: BrokerState, session_id: str, segments: Sequence[SegmentRef]) -> bytes:
    with state.database.session() as db:
        try:
            return evidence.recording(db, state.recordings, session_id, segments)
        except TrailBroken as exc:
            raise trail_broken(exc) from None


def handed_out(joined: bytes, segments: Sequence[SegmentRef]) -> dict[str, object]:
    """What a ``recording.played`` or ``audit.exported`` event says of the recording it hands out."""
    return {"recording_sha256": hashlib.sha256(joined).hexdigest(), "recording_bytes": len(joined),
            "segments": len(segments)}


@router.post(
    "/sessions/{session_id}/playbacks", response_model=PlaybackStarted, status_code=201,
    summary="Start playing the recording (audited): a playback id for its byte ranges",
    responses={404: {"description": "No such session (`not_found`), or it has no recording (`no_recording`)"},
               409: {"description": "The trail does not verify (`trail_does_not_verify`)"}},
)
async def start_playback(session_id: SessionId, state: State, user: RecordingViewer, source: Source) -> PlaybackStarted:
    # A POST, so that only the auditor's own client starts (and is recorded as starting) a
    # playback: cookies need the CSRF header, which no other site can send (broker/audit/playbacks.py).
    def start() -> PlaybackStarted:
        segments = tuple(_verified_segments(state, session_id))
        if not segments:
            raise NotFound("no_recording", f"session {session_id} has no recording")
        joined = _recording_bytes(state, session_id, segments)
        with state.database.session() as db:
            # What this playback may serve, exactly: the ranges a player then asks for are not audited.
            audit.record_data(db, "recording.played", handed_out(joined, segments), actor=audit.user_actor(user),
                              source=source, session_id=session_id)
        playback = state.playbacks.start(user.id, session_id, segments, len(joined), time.monotonic())
        return PlaybackStarted(
            playback_id=playback.id, url=f"{API_PREFIX}/audit/sessions/{session_id}/recording?playback={playback.id}",
            bytes=playback.size, segments=len(segments), idle_seconds=int(state.playbacks.idle_seconds),
        )

    return await run_in_threadpool(start)


def playback_required(session_id: str) -> Forbidden:
    return Forbidden(
        "playback_required", f"start a playback first: POST {API_PREFIX}/audit/sessions/{session_id}/playbacks (audited as "
        "recording.played), then ask with ?playback=<its playback_id>; an id is yours alone, for this session, "
        f"and lapses after {PLAYBACK_IDLE_SECONDS / 60:g} minutes unused",
    )


@router.get(
    "/sessions/{session_id}/recording",
    summary="The bytes of a started playback, as one WebM (byte ranges for seeking; not audited again)",
    responses={200: {"content": {"video/webm": {}}}, 206: {"content": {"video/webm": {}}},
               403: {"description": "No playback id, or not one of yours for this session (`playback_required`)"}},
)
async def recording(
    session_id: SessionId, state: State, user: RecordingViewer,
    playback: Annotated[str | None, Query(max_length=64, description="playback_id from POST .../playbacks")] = None,
    range_header: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
) -> Response:
    # A browser's <video> asks for byte ranges (from 0 first, then wherever the viewer seeks);
    # without them Chromium cannot seek at all. Each is served from the segments the playback
    # started with, after checking that the trail still verifies (an event sealed behind the
    # broker's back stops the playback at once).
    started = state.playbacks.find(playback, user.id, session_id, time.monotonic()) if playback else None

    def build() -> bytes:
        if started is None:
            with state.database.session() as db:
                _session(db, session_id)  # 404 for a session that does not exist, as elsewhere
            raise playback_required(session_id)
        current = tuple(_verified_segments(state, session_id))
        if current[:len(started.segments)] != started.segments:
            raise Conflict(
                "recording_changed", "the recording's segments changed since this playback started: start another",
            )
        return _recording_bytes(state, session_id, started.segments)

    data = await run_in_threadpool(build)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    try:
        chosen = byte_range(range_header, len(data))
    except ValueError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
    if chosen is None:
        return Response(content=data, media_type="video/webm", headers=headers)
    first, last = chosen
    return Response(content=data[first:last + 1], status_code=206, media_type="video/webm",
                    headers={**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"})


@router.post(
    "/sessions/{session_id}/export", summary="A bundle that verifies offline (audited)",
    responses={200: {"content": {"application/zip": {}}}},
)
async def export(session_id: SessionId, state: State, user: AuditExporter, source: Source) -> Response:
    # A POST for the same reason as a playback: another site cannot have it made, nor recorded.
    def build() -> bytes:
        # 1. The trail sealed and checked, and the recording joined from it.
        before = _verified(state, session_id)
        joined = _recording_bytes(state, session_id, before.segments)
        # 2. The export goes on the record with the hash of the recording it hands out...
        with state.database.session() as db:
            exported = audit.record_data(
                db, "audit.exported", handed_out(joined, before.segments), actor=audit.user_actor(user),
                source=source, session_id=session_id,
            )
            db.flush()
            export_row = exported.id
        # 3. ...is sealed under a signed head, and the bundle carries the trail to that head.
        verified = _verified(state, session_id)
        export_seq = next((e.seq for e in verified.events if e.id == export_row), None)
        if verified.head is None or export_seq is None:
            raise Busy("trail_busy", "the export could not be sealed into the trail yet; try again")
        with state.database.session() as db:
            segments = [(ref.index, functools.partial(evidence.segment_bytes, db, state.recordings, session_id, ref))
                        for ref in verified.segments]
            try:
                return write_bundle(session_id, verified.events, verified.head, state.keys.public_key_b64,
                                    export_seq, segments, joined)
            except TrailBroken as exc:
                raise trail_broken(exc) from None

    data = await run_in_threadpool(build)
    return Response(content=data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="deskhand-session-{session_id}.zip"',
                             "Cache-Control": "private, no-store"})


@router.post("/verify", summary="Verify the whole trail and every stored segment")
async def verify(state: State, _auditor: AuditReader) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with state.sealed_trail() as db:
            trail = load_chains(db)
        verdict = verify_loaded(trail, state.keys.public_key, state.recordings.stored_sha256, freshness=None)
        return {"ok": verdict.ok, "chains": verdict.chains, "events": verdict.events,
                "checkpoints": verdict.checkpoints, "segments": verdict.segments, "unsealed": trail.unsealed,
                "problems": [str(p) for p in verdict.problems]}

    return await run_in_threadpool(run)


@router.get("/heads", summary="Every chain's signed head, to keep outside the broker")
def heads(state: State, _auditor: AuditReader) -> dict[str, Any]:
    with state.sealed_trail() as db:
        return heads_document(db, state.keys.public_key_b64)
