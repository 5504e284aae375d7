"""How a support session and its host read in the console's output (session, ticket and audit commands)."""

from __future__ import annotations

from protocol.api import SessionOut


def describe_host(session: SessionOut) -> str:
    """Who is on the other end: ``user on machine (os)``, or that nobody has joined yet."""
    if session.host is None:
        return "no host yet"
    h = session.host
    return f"{h.user_name} on {h.machine_name} ({h.os})"


def describe_session(s: SessionOut) -> list[str]:
    """A session's state, technician, host and times, one line each."""
    lines = [
        f"Session {s.id} on ticket {s.ticket_id}: {s.state.value}",
        f"  technician: {s.technician.display_name} ({s.technician.username})",
        f"  host:       {describe_host(s)}",
        f"  created:    {s.created_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if s.connected_at:
        lines.append(f"  connected:  {s.connected_at:%Y-%m-%d %H:%M:%S} UTC")
    if s.ended_at:
        by = f" by {s.ended_by.value}" if s.ended_by else ""
        lines.append(f"  ended:      {s.ended_at:%Y-%m-%d %H:%M:%S} UTC{by}" + (f": {s.end_reason}" if s.end_reason else ""))
    return lines
