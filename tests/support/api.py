"""Small helpers for talking to a test broker's REST API with httpx.

``headers`` below are ``Authorization`` headers, as made by :func:`bearer` or the
``admin`` fixture. Helpers that expect success assert it, with the body in the message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.broker import BrokerProcess

HOST_BODY = {"machine_name": "test-pc", "os": "Linux 6", "user_name": "ann"}
"""What a host tells the broker about itself when it joins."""


def bearer(token: str) -> dict[str, str]:
    """``Authorization`` headers for a bearer ``token``."""
    return {"Authorization": f"Bearer {token}"}


def create_ticket(broker: BrokerProcess, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    """Open a ticket (defaults for the required fields, ``fields`` override); returns it."""
    body = {"subject": "Printer offline", "requester_name": "Ann", "requester_email": "ann@example.com", **fields}
    response = broker.http.post("/tickets", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def start_session(broker: BrokerProcess, headers: dict[str, str], ticket_id: int | None = None) -> dict[str, Any]:
    """A session on ``ticket_id`` (a new ticket by default); the session-start answer, with the code."""
    if ticket_id is None:
        ticket_id = create_ticket(broker, headers)["id"]
    response = broker.http.post("/sessions", json={"ticket_id": ticket_id}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def join(broker: BrokerProcess, code: str, **overrides: Any) -> httpx.Response:
    """Redeem ``code`` as a host would (no login); the raw response, success or not."""
    return broker.http.post("/join", json={"code": code, **HOST_BODY, **overrides})


def paired_session(broker: BrokerProcess, headers: dict[str, str]) -> tuple[str, str]:
    """A session a host has joined: ``(session id, host token)``."""
    response = join(broker, start_session(broker, headers)["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    return body["session_id"], body["host_token"]


def consented_session(broker: BrokerProcess, headers: dict[str, str], consent: list[str]) -> tuple[str, str]:
    """A joined session whose user allowed ``consent`` (set in the database): ``(session id, host token)``."""
    session_id, host_token = paired_session(broker, headers)
    broker.sql("UPDATE support_sessions SET consent = ? WHERE id = ?", json.dumps(consent), session_id)
    return session_id, host_token


def end_session(broker: BrokerProcess, headers: dict[str, str], session_id: str, reason: str = "") -> httpx.Response:
    """End a session as its technician, over REST; the raw response."""
    return broker.http.post(f"/sessions/{session_id}/end", json={"reason": reason}, headers=headers)


def start_playback(broker: BrokerProcess, headers: dict[str, str], session_id: str) -> httpx.Response:
    """``POST /audit/sessions/{id}/playbacks``: start (and have audited) a playback; the raw response."""
    return broker.http.post(f"/audit/sessions/{session_id}/playbacks", headers=headers)


def fetch_playback(
    broker: BrokerProcess, headers: dict[str, str], session_id: str, playback_id: str, byte_range: str | None = None,
) -> httpx.Response:
    """The recording's bytes for a started playback (``byte_range``: a ``Range`` header's value)."""
    extra = {"Range": byte_range} if byte_range else {}
    return broker.http.get(f"/audit/sessions/{session_id}/recording", params={"playback": playback_id},
                           headers={**headers, **extra})


def play_recording(broker: BrokerProcess, headers: dict[str, str], session_id: str) -> httpx.Response:
    """Start a playback and fetch the whole recording with it; the refusal if either is refused."""
    started = start_playback(broker, headers, session_id)
    if started.status_code != 201:
        return started
    return fetch_playback(broker, headers, session_id, started.json()["playback_id"])


def export_bundle(broker: BrokerProcess, headers: dict[str, str], session_id: str) -> httpx.Response:
    """``POST /audit/sessions/{id}/export``: the bundle (audited); the raw response."""
    return broker.http.post(f"/audit/sessions/{session_id}/export", headers=headers, timeout=60)


def exported_bundle_verifies(broker: BrokerProcess, session_id: str, directory: Path) -> Path:
    """Export the session's bundle as its first admin into ``directory``, and check that
    ``deskhand-broker audit verify-bundle`` verifies it; the bundle's path."""
    exported = export_bundle(broker, bearer(broker.login()), session_id)
    assert exported.status_code == 200, exported.text
    bundle = directory / "bundle.zip"
    bundle.write_bytes(exported.content)
    checked = subprocess.run([sys.executable, "-m", "broker.cli", "audit", "verify-bundle", str(bundle)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "Trail verified" in checked.stdout, checked.stdout + checked.stderr
    return bundle


def audit_kinds(broker: BrokerProcess, session_id: str) -> list[str]:
    """The kinds of audit events about ``session_id``, oldest first."""
    rows = broker.sql("SELECT kind FROM audit_events WHERE session_id = ? ORDER BY id", session_id)
    return [str(kind) for (kind,) in rows]


def age_sla_timers(broker: BrokerProcess, ticket_id: int, hours: float) -> None:
    """Move a ticket's running SLA timers ``hours`` into the past, as if that time had passed.

    The broker's next SLA sweep then finds the due time behind it (it is set a minute ago here).
    """
    (raw,) = broker.sql("SELECT sla FROM tickets WHERE id = ?", ticket_id)[0]
    state = json.loads(str(raw))
    for timer in ("first_response", "resolution"):
        since = state[timer]["since"]
        if since:
            state[timer]["since"] = (datetime.fromisoformat(since) - timedelta(hours=hours)).isoformat()
    due = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None).isoformat(sep=" ")
    broker.sql("UPDATE tickets SET sla = ?, sla_due_at = ?, sla_warn_at = ? WHERE id = ?",
               json.dumps(state), due, due, ticket_id)
