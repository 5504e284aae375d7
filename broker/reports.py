"""What auditors get: session reports, the joined recording, and self-verifying export bundles."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .bundles import BUNDLE_FORMAT
from .chain import Verdict
from .keys import BrokerKeys
from .models import AuditEvent, RecordingSegment, SupportSession, Transfer, User
from .recordings import RecordingStore, concatenate, iter_segments
from .serializers import session_out
from .timeline import COUNTED_IN_SESSIONS, Names, session_counts, timeline
from .trail import SEGMENT_KIND, load_chains, verify_loaded


def integrity(db: Session, keys: BrokerKeys, store: RecordingStore, session_id: str) -> tuple[Verdict, int]:
    """Verify one session's chain and its stored segments; also how many events wait to be sealed."""
    events, checkpoints, unsealed = load_chains(db, session_id)
    verdict = verify_loaded(events, checkpoints, keys.public_key, store.stored_sha256)
    return verdict, unsealed


def session_names(db: Session, session: SupportSession, actors: Iterable[str]) -> Names:
    """Who the ``actors`` of ``session``'s trail are: its technician, its host's person, other accounts."""
    technician = audit.user_actor(session.technician)
    prefix = audit.USER_ACTOR_PREFIX
    usernames = {a.removeprefix(prefix) for a in actors if a.startswith(prefix) and a != technician}
    accounts = dict(db.execute(select(User.username, User.display_name).where(User.username.in_(usernames))).all())
    return Names(
        technician_actor=technician, technician=session.technician.display_name,
        host_actor=audit.host_actor(session.id), requester=session.ticket.requester_name,
        host_login=session.host_user_name,
        accounts={prefix + name: display for name, display in accounts.items()},
    )


def session_report(db: Session, keys: BrokerKeys, store: RecordingStore, session: SupportSession) -> dict[str, Any]:
    """Everything an auditor reads about one session, in one document.

    ``events`` is every sealed event as chained; ``timeline`` is the same in the
    order the broker received them, with names and with frequent events in runs
    (:func:`broker.timeline.timeline`).
    """
    loaded, _checkpoints, _unsealed = load_chains(db, session.id)
    chained = loaded.get(session.id, [])
    names = session_names(db, session, {e.actor for e in chained})
    events = [{**e.to_json(), "who": names.who(e.actor)} for e in chained]
    verdict, unsealed = integrity(db, keys, store, session.id)
    chat = [
        {"at": e["at"], "reported_at": e["data"].get("reported_at"), "from": e["actor"], "who": e["who"],
         "text": e["data"].get("text", "")}
        for e in events if e["kind"] == "chat.sent"
    ]
    consent = [
        {"at": e["at"], "permissions": e["data"].get("permissions"), "given_by": e["data"].get("given_by")}
        for e in events if e["kind"] == "consent.changed"
    ]
    segments = db.scalars(
        select(RecordingSegment).where(RecordingSegment.session_id == session.id).order_by(RecordingSegment.index)
    ).all()
    transfers = db.scalars(select(Transfer).where(Transfer.session_id == session.id).order_by(Transfer.created_at)).all()
    out = session_out(session)
    return {
        "session": json.loads(out.model_dump_json()),
        "ticket": {"id": session.ticket.id, "subject": session.ticket.subject},
        "participants": [
            {"role": "technician", "username": session.technician.username, "display_name": session.technician.display_name,
             "who": names.who(names.technician_actor)},
            {"role": "host", "machine_name": session.host_machine_name, "os": session.host_os,
             "user_name": session.host_user_name, "address": session.host_address,
             "requester_name": session.ticket.requester_name, "who": names.who(names.host_actor)},
        ],
        "consent": consent,
        "chat": chat,
        "files": [
            {"name": t.name, "saved_as": t.saved_as, "size": t.size, "direction": t.direction, "state": t.state,
             "sha256": t.sha256, "broker_sha256": t.broker_sha256, "created_by": t.created_by, "reason": t.reason}
            for t in transfers
        ],
        "recording": {
            "segments": len(segments),
            "duration_ms": max((s.offset_ms + s.duration_ms for s in segments), default=0),
            "bytes": sum(s.size for s in segments),
        },
        "counts": {**session_counts(chained), "files": len(transfers)},
        "timeline": timeline(chained, names.who),
        "events": events,
        "integrity": {
            "ok": verdict.ok, "events": verdict.events, "checkpoints": verdict.checkpoints,
            "segments": verdict.segments, "unsealed": unsealed, "problems": [str(p) for p in verdict.problems],
        },
    }


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def session_note(db: Session, session: SupportSession) -> str:
    """The session report a ticket gets as an internal note when a session ends: who, how long, what happened."""
    # Sealed or not: the note is written as the session ends, before its last events are sealed.
    counts = session_counts(db.scalars(select(AuditEvent).where(
        AuditEvent.session_id == session.id, AuditEvent.kind.in_(COUNTED_IN_SESSIONS))))
    transfers = db.scalars(select(Transfer).where(Transfer.session_id == session.id).order_by(Transfer.created_at)).all()
    segments = db.execute(
        select(func.count(), func.coalesce(func.max(RecordingSegment.offset_ms + RecordingSegment.duration_ms), 0))
        .where(RecordingSegment.session_id == session.id)
    ).one()
    ended = session.ended_at or session.created_at
    start = session.connected_at or session.created_at
    lines = [
        f"Session {session.id} report",
        f"Technician: {session.technician.display_name} ({session.technician.username})",
        f"Computer: {session.host_machine_name or '?'} ({session.host_os or '?'}), user {session.host_user_name or '?'}",
        f"Connected {start:%Y-%m-%d %H:%M:%S} UTC for {_duration((ended - start).total_seconds())}",
        f"Ended by the {session.ended_by or 'broker'}" + (f": {session.end_reason}" if session.end_reason else ""),
        f"Consent at the end: {', '.join(session.consent) if session.consent else 'none given'}",
        f"Chat messages: {counts['chat_messages']}",
    ]
    if counts["inputs_sent"] or counts["inputs_applied"] or counts["inputs_refused"]:
        lines.append(f"Remote input: {counts['inputs_sent']} sent, {counts['inputs_applied']} applied, "
                     f"{counts['inputs_refused']} refused")
    if counts["clipboard_shares"]:
        lines.append(f"Clipboard shared: {counts['clipboard_shares']} times")
    if transfers:
        lines.append(f"Files ({len(transfers)}):")
        lines += [f"  {t.direction} {t.name} ({_size(t.size)}): {t.state}" for t in transfers]
    else:
        lines.append("Files: none")
    lines.append(f"Recording: {segments[0]} segments, {_duration(segments[1] / 1000)}")
    return "\n".join(lines)


def recording_webm(db: Session, store: RecordingStore, session_id: str) -> bytes:
    """The session's recording as one WebM (segments joined at their offsets, no re-encoding)."""
    rows = db.execute(
        select(RecordingSegment.index, RecordingSegment.offset_ms, RecordingSegment.sha256)
        .where(RecordingSegment.session_id == session_id)
        .order_by(RecordingSegment.index)
    ).all()
    if not rows:
        return b""
    key = store.data_key(db, session_id)
    return store.joined(
        session_id, tuple((r.index, r.sha256) for r in rows),
        lambda: concatenate(iter_segments(store, session_id, key, [(r.index, r.offset_ms) for r in rows])),
    )


def export_bundle(db: Session, keys: BrokerKeys, store: RecordingStore, session_id: str) -> bytes:
    """A zip that anyone can verify offline: the chain, the signatures, the segments, the public key."""
    events, checkpoints, _unsealed = load_chains(db, session_id)
    chain = events.get(session_id, [])
    key = store.data_key(db, session_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("manifest.json", json.dumps({
            "format": BUNDLE_FORMAT,
            "session_id": session_id,
            "public_key": keys.public_key_b64,
            "public_key_sha256": hashlib.sha256(base64.b64decode(keys.public_key_b64)).hexdigest(),
        }, indent=2))
        bundle.writestr("events.jsonl", "".join(json.dumps(e.to_json(), sort_keys=True) + "\n" for e in chain))
        bundle.writestr("checkpoints.json", json.dumps([c.to_json() for c in checkpoints.get(session_id, [])], indent=2))
        for event in chain:
            if event.kind == SEGMENT_KIND:
                index = int(event.data["index"])
                bundle.writestr(f"segments/{index:08d}.webm", store.read(session_id, index, key))
        bundle.writestr("recording.webm", recording_webm(db, store, session_id))
    return buffer.getvalue()


