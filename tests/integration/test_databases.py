"""What must hold the same on SQLite and PostgreSQL: a trail written on either verifies, restarts
continue it, an edit is caught, and text one of them cannot hold is the client's error, not a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api import bearer, create_ticket, end_session, paired_session
from tests.support.broker import BrokerProcess, audit_verify
from tests.support.database import BrokerDatabases, run_sql

pytestmark = pytest.mark.both_stacks

TRICKY_TEXT = "Drucker – \"kaputt\" 😀 \\ % _ ' \u0000 end"
"""Peer-event text whose JSON must come back byte for byte: quotes, escapes, LIKE wildcards, U+0000."""


def test_a_trail_written_on_the_database_verifies_across_a_restart_and_an_edit_is_caught(
    broker_db: BrokerDatabases, tmp_path: Path,
) -> None:
    database = broker_db.env()
    data_dir = tmp_path / "data"
    with BrokerProcess.start(database, data_dir=data_dir) as broker:
        admin = bearer(broker.login())
        create_ticket(broker, admin, subject="Mail stuck – Ümlaut 😀", description="line 1\nline 2\t€")
        session_id, host_token = paired_session(broker, admin)
        events = [{"id": "chat-0001", "kind": "chat.sent", "at": "2026-12-02T08:00:00.123456Z",
                   "data": {"text": TRICKY_TEXT}},
                  {"id": "clip-0001", "kind": "clipboard.received", "at": "2026-12-02T08:00:01Z",
                   "data": {"chars": 31999, "sha256": "0" * 64}}]
        posted = broker.http.post(f"/sessions/{session_id}/events", json={"events": events}, headers=bearer(host_token))
        assert posted.status_code == 200, posted.text
        assert end_session(broker, admin, session_id, "done – ok").status_code == 200
        broker.restart()  # the same database: not a first start, no second admin
        admin = bearer(broker.login())
        create_ticket(broker, admin, subject="After the restart")
        assert broker.sql("SELECT count(*) FROM users")[0][0] == 1
    checked = audit_verify(data_dir, database)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("Trail verified: 2 chains"), checked.stdout

    run_sql(broker.database_url, "UPDATE audit_events SET data = ? WHERE kind = 'chat.sent'",
            '{"text": "Drucker - nothing to see"}')
    tampered = audit_verify(data_dir, database)
    assert tampered.returncode != 0, tampered.stdout
    assert "was edited (chat.sent no longer matches its hash)" in tampered.stdout + tampered.stderr


NUL_FILTERS = [
    ("/tickets", {"q": "a\u0000b"}),
    ("/tickets", {"category": "\u0000"}),
    ("/audit/sessions", {"host": "\u0000"}),
    ("/audit/sessions", {"technician": "x\u0000"}),
]
"""Query-string filters that reach a query as text (bodies refuse control characters earlier)."""


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    """On SQLite, then on PostgreSQL."""
    return broker_db.env()


def test_a_nul_character_in_a_filter_is_never_a_500(broker_db: BrokerDatabases, broker: BrokerProcess, admin) -> None:
    """PostgreSQL's text cannot hold U+0000: there the query is refused (422) before it is sent."""
    for path, params in NUL_FILTERS:
        answer = broker.http.get(path, params=params, headers=admin)
        assert answer.status_code in (200, 422), (path, params, answer.text)
        if broker_db.kind == "postgresql":
            assert answer.status_code == 422 and "U+0000" in answer.json()["message"], (path, params, answer.text)
    assert "Traceback" not in broker.output_text(500)
