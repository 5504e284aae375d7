"""The auditors' side: sessions, reports, recordings, exports, and whole-trail verification.

Every playback and every export is itself recorded in the trail.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool

from protocol.api import SessionOut

from .. import audit
from ..access import AuditExporter, AuditReader, RecordingViewer
from ..deps import DB, SessionId, Source, State
from ..errors import not_found
from ..models import SupportSession, User
from ..reports import export_bundle, recording_webm, session_report
from ..serializers import session_out
from ..support_sessions import get_session
from ..trail import load_chains, verify_loaded

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
        query = query.where(SupportSession.created_at >= _utc(since))
    if until:
        query = query.where(SupportSession.created_at <= _utc(until))
    return [session_out(s) for s in db.scalars(query.limit(limit))]


def _utc(moment: datetime) -> datetime:
    """A moment without a time zone is taken as UTC (the stored times are UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _session(db: DB, session_id: str) -> SupportSession:
    session = get_session(db, session_id)
    if session is None:
        raise not_found(f"session {session_id}")
    return session


@router.get("/sessions/{session_id}/report", summary="Participants, consent, chat, files, timeline and integrity")
def report(session_id: SessionId, db: DB, state: State, _auditor: AuditReader) -> dict[str, Any]:
    state.seal_trail(set())
    session = _session(db, session_id)
    return session_report(db, state.keys, state.recordings, session)


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


@router.get(
    "/sessions/{session_id}/recording", summary="The recording as one WebM (audited; byte ranges for seeking)",
    responses={200: {"content": {"video/webm": {}}}, 206: {"content": {"video/webm": {}}}},
)
async def recording(
    session_id: SessionId, state: State, user: RecordingViewer, source: Source,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    # A browser's <video> asks for byte ranges (from 0 first, then wherever the viewer seeks);
    # without them Chromium cannot seek at all. One playback is audited once: a request for
    # the whole recording or for a range from its start.
    wanted = RANGE.match(range_header.strip()) if range_header else None
    from_start = wanted is None or wanted.group(1) == "0"

    def build() -> bytes:
        with state.database.session() as db:
            _session(db, session_id)
            if from_start:
                audit.record(db, "recording.played", actor=audit.user_actor(user), source=source, session_id=session_id)
            return recording_webm(db, state.recordings, session_id)

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


@router.get(
    "/sessions/{session_id}/export", summary="A bundle that verifies offline (audited)",
    responses={200: {"content": {"application/zip": {}}}},
)
async def export(session_id: SessionId, state: State, user: AuditExporter, source: Source) -> Response:
    def build() -> bytes:
        with state.database.session() as db:
            _session(db, session_id)
            audit.record(db, "audit.exported", actor=audit.user_actor(user), source=source, session_id=session_id)
        state.seal_trail({session_id})
        with state.database.session() as db:
            return export_bundle(db, state.keys, state.recordings, session_id)

    data = await run_in_threadpool(build)
    return Response(content=data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="deskhand-session-{session_id}.zip"'})


@router.post("/verify", summary="Verify the whole trail and every stored segment")
async def verify(state: State, _auditor: AuditReader) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        state.seal_trail(set())
        with state.database.session() as db:
            events, checkpoints, unsealed = load_chains(db)
        verdict = verify_loaded(events, checkpoints, state.keys.public_key, state.recordings.stored_sha256)
        return {"ok": verdict.ok, "chains": verdict.chains, "events": verdict.events,
                "checkpoints": verdict.checkpoints, "segments": verdict.segments, "unsealed": unsealed,
                "problems": [str(p) for p in verdict.problems]}

    return await run_in_threadpool(run)
