"""What auditors and tickets read about a session: the session report and the note a ticket gets."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.audit.evidence import TrailBroken, segment_refs
from broker.audit.recordings import RecordingStore
from broker.audit.timeline import COUNTED_IN_SESSIONS, Names, session_counts, timeline
from broker.audit.trail import LoadedTrail, verify_loaded
from broker.keys import BrokerKeys
from broker.serializers import session_out
from broker.storage.models import AuditEvent, RecordingSegment, SupportSession, Transfer, User


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


def session_report(
    db: Session, keys: BrokerKeys, store: RecordingStore, session: SupportSession, trail: LoadedTrail,
) -> dict[str, Any]:
    """Everything an auditor reads about one session, in one document.

    ``trail`` is the session's chain as read at rest (:meth:`broker.deps.BrokerState.sealed_trail`),
    so it is verified strictly. ``events`` is every sealed event as chained; ``timeline`` is the
    same in the order the broker received them, with names and with frequent events in runs
    (:func:`broker.audit.timeline.timeline`).
    """
    chained = trail.events.get(session.id, [])
    names = session_names(db, session, {e.actor for e in chained})
    events = [{**e.to_json(), "who": names.who(e.actor)} for e in chained]
    verdict = verify_loaded(trail, keys.public_key, store.stored_sha256, freshness=None, only=session.id)
    try:
        segments = segment_refs(session.id, chained) if verdict.ok else []
    except TrailBroken as exc:
        verdict.problems += exc.problems
        segments = []
    chat = [
        {"at": e["at"], "reported_at": e["data"].get("reported_at"), "from": e["actor"], "who": e["who"],
         "text": e["data"].get("text", "")}
        for e in events if e["kind"] == "chat.sent"
    ]
    consent = [
        {"at": e["at"], "permissions": e["data"].get("permissions"), "given_by": e["data"].get("given_by")}
        for e in events if e["kind"] == "consent.changed"
    ]
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
        "recording": {  # from the chain's segment events (none while the trail does not verify)
            "segments": len(segments),
            "duration_ms": max((s.offset_ms + s.duration_ms for s in segments), default=0),
            "bytes": sum(s.size for s in segments),
        },
        "counts": {**session_counts(chained), "files": len(transfers)},
        "timeline": timeline(chained, names.who),
        "events": events,
        "integrity": {
            "ok": verdict.ok, "events": verdict.events, "checkpoints": verdict.checkpoints,
            "segments": verdict.segments, "unsealed": trail.unsealed, "problems": [str(p) for p in verdict.problems],
        },
    }


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = n / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


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
