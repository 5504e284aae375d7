"""Support codes: issue, redeem once, refuse the rest, limit guessing, expire."""

from __future__ import annotations

import time

import httpx

from tests.support.api import bearer, join, start_session


def session_row(broker, session_id: str) -> dict:
    rows = broker.sql(
        "SELECT state, connected_at, ended_at, ended_by, host_machine_name FROM support_sessions WHERE id = ?",
        session_id,
    )
    state, connected_at, ended_at, ended_by, machine = rows[0]
    return {"state": state, "connected_at": connected_at, "ended_at": ended_at, "ended_by": ended_by, "machine": machine}


def test_a_code_is_nine_digits_shown_grouped_and_stored_only_as_a_keyed_hash(broker, admin) -> None:
    started = start_session(broker, admin)
    code = started["code"]
    assert len(code) == 9 and code.isdigit()
    assert started["code_display"] == f"{code[:3]} {code[3:6]} {code[6:]}"
    assert started["session"]["state"] == "waiting"
    dump = "\n".join(str(row) for row in broker.sql("SELECT * FROM support_sessions"))
    dump += "\n".join(str(row) for row in broker.sql("SELECT * FROM audit_events"))
    assert code not in dump


def test_join_with_dashes_returns_host_token_ice_and_key_then_the_code_is_burned(broker, admin) -> None:
    started = start_session(broker, admin)
    code = started["code"]
    response = join(broker, f"{code[:3]}-{code[3:6]}-{code[6:]}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["session_id"] == started["session"]["id"]
    assert body["host_token"].startswith("dhh_")
    assert body["ice"] == {"servers": [], "loopback_only": False}
    assert len(body["broker_public_key"]) == 44  # base64 of 32 bytes
    assert body["signalling_path"] == f"/api/v1/sessions/{body['session_id']}/signal"
    row = session_row(broker, body["session_id"])
    assert row["state"] == "connected" and row["connected_at"] and row["machine"] == "test-pc"

    again = join(broker, code)
    assert again.status_code == 409 and again.json()["error"] == "code_used"


def test_unknown_cancelled_and_expired_codes_are_refused_with_their_reason(broker, admin) -> None:
    unknown = join(broker, "000 000 001")
    assert unknown.status_code == 404 and unknown.json()["error"] == "code_unknown"

    cancelled = start_session(broker, admin)
    httpx.post(broker.api + f"/sessions/{cancelled['session']['id']}/end", json={"reason": "wrong ticket"}, headers=admin)
    response = join(broker, cancelled["code"])
    assert response.status_code == 410 and response.json()["error"] == "code_cancelled"

    expired = start_session(broker, admin)
    broker.sql("UPDATE support_sessions SET code_expires_at = '2000-01-01 00:00:00' WHERE id = ?", expired["session"]["id"])
    response = join(broker, expired["code"])
    assert response.status_code == 410 and response.json()["error"] == "code_expired"


def test_malformed_join_bodies_are_refused(broker, admin) -> None:
    for body in (
        {"code": "12345678", "machine_name": "pc", "os": "x", "user_name": "u"},
        {"code": "123 456 78x", "machine_name": "pc", "os": "x", "user_name": "u"},
        {"code": "123456789", "machine_name": "", "os": "x", "user_name": "u"},
        {"code": "123456789", "machine_name": "pc\nevil", "os": "x", "user_name": "u"},
        {"code": "123456789", "machine_name": "pc", "os": "x"},
    ):
        response = httpx.post(broker.api + "/join", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"] == "invalid_request"


def test_the_sweeper_marks_an_overdue_waiting_session_expired(broker, admin) -> None:
    started = start_session(broker, admin)
    session_id = started["session"]["id"]
    broker.sql("UPDATE support_sessions SET code_expires_at = '2000-01-01 00:00:00' WHERE id = ?", session_id)
    deadline = time.monotonic() + 10
    while session_row(broker, session_id)["state"] != "expired":
        assert time.monotonic() < deadline, "the sweeper did not expire the session"
        time.sleep(0.2)
    shown = httpx.get(broker.api + f"/sessions/{session_id}", headers=admin).json()
    assert shown["state"] == "expired" and shown["ended_by"] == "broker" and shown["ended_at"]
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", session_id)]
    assert kinds == ["session.created", "code.issued", "session.expired"]


def test_session_lifecycle_end_twice_and_the_ticket_lists_it(broker, admin) -> None:
    started = start_session(broker, admin)
    session_id = started["session"]["id"]
    assert join(broker, started["code"]).status_code == 200
    ended = httpx.post(broker.api + f"/sessions/{session_id}/end", json={"reason": "fixed"}, headers=admin)
    assert ended.status_code == 200
    body = ended.json()
    assert body["state"] == "ended" and body["ended_by"] == "technician" and body["end_reason"] == "fixed"
    assert body["created_at"] <= body["connected_at"] <= body["ended_at"]
    twice = httpx.post(broker.api + f"/sessions/{session_id}/end", json={}, headers=admin)
    assert twice.status_code == 409 and twice.json()["error"] == "session_over"
    ticket = httpx.get(broker.api + f"/tickets/{body['ticket_id']}", headers=admin).json()
    assert [s["id"] for s in ticket["sessions"]] == [session_id]


def test_sessions_of_others_and_bad_ids(broker, admin) -> None:
    assert httpx.get(broker.api + "/sessions/not-a-uuid", headers=admin).status_code == 422
    missing = httpx.get(broker.api + "/sessions/00000000-0000-0000-0000-000000000000", headers=admin)
    assert missing.status_code == 404
    assert httpx.post(broker.api + "/sessions", json={"ticket_id": 424242}, headers=admin).status_code == 404
    assert httpx.post(broker.api + "/sessions", json={"ticket_id": "one"}, headers=admin).status_code == 422
    assert httpx.post(broker.api + "/sessions", json={"ticket_id": 1}).status_code == 401


def test_a_burst_of_wrong_codes_is_limited_audited_and_blocks_even_a_right_code(start_broker) -> None:
    broker = start_broker(DESKHAND_CODE_FAILURES_PER_SOURCE="5")
    headers = bearer(broker.login())
    started = start_session(broker, headers)
    statuses = [join(broker, f"000 000 {i:03d}").status_code for i in range(8)]
    assert statuses[:5] == [404] * 5 and statuses[5:] == [429] * 3
    limited = join(broker, started["code"])
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60

    events = broker.sql("SELECT kind, source, data FROM audit_events WHERE kind LIKE 'code.%'")
    failed = [e for e in events if e[0] == "code.redeem_failed"]
    limited_events = [e for e in events if e[0] == "code.rate_limited"]
    assert len(failed) == 5 and all(source == "127.0.0.1" for _k, source, _d in failed)
    assert len(limited_events) == 1
    assert started["code"] not in str(events)
    # The session that was not guessed is untouched.
    assert broker.sql("SELECT state FROM support_sessions")[0][0] == "waiting"
