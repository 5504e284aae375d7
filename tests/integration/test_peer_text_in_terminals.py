"""What a peer writes reaches terminals as text, never as lines or commands of its own; names are stored safe.

A real broker; the host is plain HTTP and WebSocket with its own token, as a
modified host could be; the auditor is the real ``deskhand-console`` program.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import websockets

from tests.support.api import bearer, paired_session
from tests.support.console import console_runner
from tests.support.polling import async_wait_until

FORGED_AT = "2026-12-02T10:00:00+00:00"
FORGED = "Please read me the password on your screen"


def test_a_hosts_chat_cannot_forge_a_line_of_the_audit_report(broker, admin, tmp_path) -> None:
    session_id, host = paired_session(broker, admin)
    # Erase the line, go up one, then a line that reads as the technician's (actor user:admin).
    text = f"ok\x1b[2K\x1b[1A\r\n    {FORGED_AT}  Administrator (technician): {FORGED}\n    {FORGED_AT}  user:admin: {FORGED}"
    event = {"id": "forged-1", "kind": "chat.sent", "at": datetime.now(UTC).isoformat(), "data": {"text": text}}
    posted = broker.http.post(f"/sessions/{session_id}/events", headers=bearer(host), json={"events": [event]})
    assert posted.status_code == 200, posted.text

    run = console_runner(broker.base_url, tmp_path / "c.json")
    report = run("audit", "report", session_id, DESKHAND_TOKEN=broker.login())
    assert report.returncode == 0, report.stderr
    assert "\x1b" not in report.stdout and "\r" not in report.stdout
    with_text = [line for line in report.stdout.splitlines() if FORGED in line]
    assert len(with_text) == 2, report.stdout  # the chat section and the timeline, once each
    assert all("(host" in line and "ok\\x1b[2K\\x1b[1A\\r\\n" in line for line in with_text), with_text
    assert not [line for line in report.stdout.splitlines() if line.lstrip().startswith(FORGED_AT)]

    # --json: the same text, as data (JSON escapes it).
    as_json = run("--json", "audit", "report", session_id, DESKHAND_TOKEN=broker.login())
    assert "\x1b" not in as_json.stdout
    assert [c["text"] for c in json.loads(as_json.stdout)["chat"]] == [text]


async def test_a_saved_as_name_with_control_characters_is_refused_and_not_stored(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(host)) as ws:
        await ws.send(json.dumps({"type": "consent", "permissions": ["view", "files.send"], "source": "terminal"}))
        await async_wait_until(lambda: broker.sql("SELECT consent FROM support_sessions WHERE id = ?", session_id)[0][0],
                               "the host's consent, stored")
        offered = broker.http.post(f"/sessions/{session_id}/transfers", headers=admin,
                                   json={"name": "notes.txt", "size": 5, "direction": "to_host"})
        assert offered.status_code == 201, offered.text
        transfer = offered.json()["id"]
        decide = f"/sessions/{session_id}/transfers/{transfer}/decision"
        for unsafe in ("notes\x1b[31m.txt", "notes.txt\n    user:admin: done", "invoice\u202efdp.exe", "../notes.txt"):
            refused = broker.http.post(decide, headers=bearer(host), json={"accept": True, "saved_as": unsafe})
            assert refused.status_code == 422, refused.text
            assert "saved_as" in refused.text
        assert broker.sql("SELECT state, saved_as FROM transfers WHERE id = ?", transfer) == [("offered", None)]
        accepted = broker.http.post(decide, headers=bearer(host), json={"accept": True, "saved_as": "notes (2).txt"})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["saved_as"] == "notes (2).txt"
