"""Support sessions and their one-time codes: issue, redeem once, refuse the rest, end, expire."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.support.api import audit_kinds, end_session, join, start_session
from tests.support.database import BrokerDatabases
from tests.support.polling import wait_until

pytestmark = pytest.mark.both_stacks

CODE_TTL = 30  # the smallest TTL the settings allow


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    """On SQLite, then on PostgreSQL."""
    return {"DESKHAND_CODE_TTL_SECONDS": str(CODE_TTL), "DESKHAND_EXPIRY_SWEEP_SECONDS": "0.2", **broker_db.env()}


def session_row(broker, session_id: str) -> dict:
    """The session's row in the broker's database."""
    rows = broker.sql(
        "SELECT state, connected_at, ended_at, ended_by, host_machine_name FROM support_sessions WHERE id = ?",
        session_id,
    )
    state, connected_at, ended_at, ended_by, machine = rows[0]
    return {"state": state, "connected_at": connected_at, "ended_at": ended_at, "ended_by": ended_by, "machine": machine}


def show(broker, admin, session_id: str) -> dict:
    response = broker.http.get(f"/sessions/{session_id}", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


def move_code_expiry_into_the_past(broker, session_id: str) -> None:
    """What waiting CODE_TTL seconds would do, without the wait."""
    assert broker.sql(
        "UPDATE support_sessions SET code_expires_at = '2000-01-01 00:00:00.000000' WHERE id = ? RETURNING id", session_id
    )


def test_a_code_is_nine_digits_shown_grouped_lives_ttl_and_is_stored_only_as_a_keyed_hash(broker, admin) -> None:
    started = start_session(broker, admin)
    code = started["code"]
    assert len(code) == 9 and code.isdigit()
    assert started["code_display"] == f"{code[:3]} {code[3:6]} {code[6:]}"
    session = started["session"]
    assert session["state"] == "waiting" and session["connected_at"] is None and session["host"] is None
    lifetime = datetime.fromisoformat(session["code_expires_at"]) - datetime.fromisoformat(session["created_at"])
    assert lifetime == timedelta(seconds=CODE_TTL)
    dump = "\n".join(str(row) for table in ("support_sessions", "audit_events") for row in broker.sql(f"SELECT * FROM {table}"))
    assert code not in dump and started["code_display"] not in dump


def test_codes_are_distinct_across_sessions(broker, admin) -> None:
    codes = {start_session(broker, admin)["code"] for _ in range(5)}
    assert len(codes) == 5


@pytest.mark.parametrize("typed", ["spaces", "dashes", "plain", "sloppy"])
def test_join_accepts_the_code_as_people_type_it(broker, admin, typed: str) -> None:
    started = start_session(broker, admin)
    code = started["code"]
    text = {
        "spaces": started["code_display"],
        "dashes": f"{code[:3]}-{code[3:6]}-{code[6:]}",
        "plain": code,
        "sloppy": f"  {code[:2]} {code[2:7]}--{code[7:]} ",
    }[typed]
    response = join(broker, text)
    assert response.status_code == 200, response.text
    assert response.json()["session_id"] == started["session"]["id"]


def test_join_returns_host_token_ice_and_key_then_the_code_is_burned(broker, admin) -> None:
    started = start_session(broker, admin)
    response = join(broker, started["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["session_id"] == started["session"]["id"] and body["ticket_id"] == started["session"]["ticket_id"]
    assert body["host_token"].startswith("dhh_")
    assert body["technician"]["username"] == "admin"
    assert body["ice"] == {"servers": [], "loopback_only": False}
    assert len(body["broker_public_key"]) == 44  # base64 of 32 bytes
    assert body["signalling_path"] == f"/api/v1/sessions/{body['session_id']}/signal"
    row = session_row(broker, body["session_id"])
    assert row["state"] == "connected" and row["connected_at"] and row["machine"] == "test-pc"

    again = join(broker, started["code_display"], machine_name="intruder")
    assert again.status_code == 409 and again.json()["error"] == "code_used"
    assert session_row(broker, body["session_id"])["machine"] == "test-pc"


def test_an_unknown_code_is_404(broker) -> None:
    response = join(broker, "000 000 001")
    assert response.status_code == 404
    assert response.json() == {"error": "code_unknown", "message": response.json()["message"]}
    assert "check the digits" in response.json()["message"]


def test_an_expired_code_is_410_and_cannot_be_revived(broker, admin) -> None:
    started = start_session(broker, admin)
    move_code_expiry_into_the_past(broker, started["session"]["id"])
    response = join(broker, started["code"])
    assert response.status_code == 410 and response.json()["error"] == "code_expired"
    assert session_row(broker, started["session"]["id"])["connected_at"] is None


def test_a_cancelled_code_is_410(broker, admin) -> None:
    started = start_session(broker, admin)
    assert end_session(broker, admin, started["session"]["id"], "wrong ticket").status_code == 200
    response = join(broker, started["code"])
    assert response.status_code == 410 and response.json()["error"] == "code_cancelled"


@pytest.mark.parametrize(
    "change",
    [
        {"code": "12345678"},
        {"code": "123 456 78x"},
        {"code": ""},
        {"code": 123456789},
        {"machine_name": ""},
        {"machine_name": "pc\nevil"},
        {"user_name": None},
        {"extra": "field"},
    ],
)
def test_malformed_join_bodies_are_refused_without_counting_as_guesses(broker, change) -> None:
    body = {"code": "123456789", "machine_name": "pc", "os": "x", "user_name": "u", **change}
    response = broker.http.post("/join", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 422, body
    assert response.json()["error"] == "invalid_request"


def test_session_lifecycle_waiting_connected_ended_and_the_ticket_lists_it(broker, admin) -> None:
    started = start_session(broker, admin)
    session_id = started["session"]["id"]
    waiting = show(broker, admin, session_id)
    assert waiting["state"] == "waiting" and waiting["connected_at"] is None and waiting["ended_at"] is None

    assert join(broker, started["code"]).status_code == 200
    connected = show(broker, admin, session_id)
    assert connected["state"] == "connected" and connected["ended_at"] is None
    assert connected["host"] == {"machine_name": "test-pc", "os": "Linux 6", "user_name": "ann"}

    ended = end_session(broker, admin, session_id, "fixed")
    assert ended.status_code == 200
    body = ended.json()
    assert body["state"] == "ended" and body["ended_by"] == "technician" and body["end_reason"] == "fixed"
    stamps = [datetime.fromisoformat(body[k]) for k in ("created_at", "connected_at", "ended_at")]
    assert stamps == sorted(stamps) and all(s.tzinfo is not None for s in stamps)
    assert show(broker, admin, session_id) == body

    twice = end_session(broker, admin, session_id)
    assert twice.status_code == 409 and twice.json()["error"] == "session_over"
    ticket = broker.http.get(f"/tickets/{body['ticket_id']}", headers=admin).json()
    assert [s["id"] for s in ticket["sessions"]] == [session_id]
    assert ticket["sessions"][0]["state"] == "ended"
    assert audit_kinds(broker, session_id) == [
        "session.created", "code.issued", "code.redeemed", "session.ended",
        "ticket.commented",  # the session report, added to the ticket as an internal note
    ]


def test_a_ticket_lists_all_its_sessions_in_order(broker, admin) -> None:
    first = start_session(broker, admin)
    ticket_id = first["session"]["ticket_id"]
    second = start_session(broker, admin, ticket_id)
    ticket = broker.http.get(f"/tickets/{ticket_id}", headers=admin).json()
    assert [s["id"] for s in ticket["sessions"]] == [first["session"]["id"], second["session"]["id"]]
    listed = {t["id"]: t for t in broker.http.get("/tickets", headers=admin).json()}
    assert listed[ticket_id]["session_count"] == 2


def test_the_sweeper_marks_an_overdue_waiting_session_expired(broker, admin) -> None:
    overdue = start_session(broker, admin)["session"]["id"]
    fresh = start_session(broker, admin)["session"]["id"]
    move_code_expiry_into_the_past(broker, overdue)
    wait_until(lambda: session_row(broker, overdue)["state"] == "expired", "the sweeper to expire the session")
    shown = show(broker, admin, overdue)
    assert shown["state"] == "expired" and shown["ended_by"] == "broker" and shown["ended_at"]
    assert audit_kinds(broker, overdue) == ["session.created", "code.issued", "session.expired"]
    assert session_row(broker, fresh)["state"] == "waiting"  # its code is still good
    ended = end_session(broker, admin, overdue)
    assert ended.status_code == 409 and "expired" in ended.json()["message"]


def test_sessions_of_others_and_bad_ids(broker, admin) -> None:
    assert broker.http.get("/sessions/not-a-uuid", headers=admin).status_code == 422
    missing = broker.http.get("/sessions/00000000-0000-0000-0000-000000000000", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert end_session(broker, admin, "00000000-0000-0000-0000-000000000000").status_code == 404
    assert broker.http.post("/sessions", json={"ticket_id": 424242}, headers=admin).status_code == 404
    assert broker.http.post("/sessions", json={"ticket_id": "one"}, headers=admin).status_code == 422
    assert broker.http.post("/sessions", json={"ticket_id": 1}).status_code == 401
