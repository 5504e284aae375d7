"""Help requests without a code, and the satisfaction survey, against a real broker.

The host asks (POST /requests), waits in the queue (GET, long-polled), a
technician picks it up and the host enters the session with its own secret as
the host token; when the session has ended, the host answers the survey once.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.accounts import make_user
from tests.support.api import HOST_BODY, audit_kinds, bearer, end_session, paired_session
from tests.support.database import BrokerDatabases

PASSWORD = "Queue-test passphrase 9"
REQUEST = {"name": "Ann Example", "summary": "Outlook will not start", **HOST_BODY}


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    return {"DESKHAND_REQUESTS_PER_SOURCE": "1000", "DESKHAND_REQUEST_IDLE_SECONDS": "4",
            "DESKHAND_EXPIRY_SWEEP_SECONDS": "0.5", **broker_db.env()}


@pytest.fixture(scope="module")
def second_technician(broker, admin) -> dict[str, str]:
    make_user(broker, "bea", role="technician", password=PASSWORD)
    return bearer(broker.login("bea", PASSWORD))


def ask(broker, **fields: Any) -> dict[str, Any]:
    response = broker.http.post("/requests", json={**REQUEST, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def poll(broker, created: dict[str, Any], token: str | None = None, **params: Any) -> httpx.Response:
    return broker.http.get(
        created["poll_path"].removeprefix("/api/v1"), params={"wait": 0, **params},
        headers=bearer(token or created["request_token"]), timeout=40,
    )


def cancel_all(broker) -> None:
    """Take every waiting request out of the queue (positions are counted from an empty queue)."""
    broker.sql("UPDATE help_requests SET state = 'cancelled' WHERE state = 'waiting'")


def test_a_request_opens_a_ticket_waits_in_the_queue_and_is_audited(broker, admin) -> None:
    cancel_all(broker)
    created = ask(broker, email="ann@example.com", details="It crashes at start.\nEvery time.", priority="high")
    assert created["position"] == 1
    assert created["request_token"].startswith("dhh_")
    ticket = broker.http.get(f"/tickets/{created['ticket_id']}", headers=admin).json()
    assert ticket["subject"] == "Outlook will not start"
    assert ticket["requester_name"] == "Ann Example"
    assert ticket["requester_email"] == "ann@example.com"
    assert ticket["priority"] == "high" and ticket["status"] == "new"
    status = poll(broker, created).json()
    assert status == {"state": "waiting", "position": 1, "join": None}
    queue = broker.http.get("/requests", headers=admin).json()
    assert [(r["id"], r["position"], r["host"]["machine_name"]) for r in queue] == [
        (created["request_id"], 1, "test-pc")]
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE ticket_id = ?", created["ticket_id"])]
    assert kinds[:2] == ["ticket.created", "request.created"]
    # The secret is stored only as its hash, and never in the trail.
    assert broker.sql("SELECT count(*) FROM help_requests WHERE token_hash = ?", created["request_token"]) == [(0,)]
    assert broker.sql("SELECT count(*) FROM audit_events WHERE CAST(data AS TEXT) LIKE ?", f"%{created['request_token']}%") == [(0,)]


def test_no_email_is_fine_and_positions_follow_the_order_of_asking(broker) -> None:
    cancel_all(broker)
    first, second, third = ask(broker), ask(broker), ask(broker)
    assert [r["position"] for r in (first, second, third)] == [1, 2, 3]
    assert poll(broker, third).json()["position"] == 3
    assert broker.http.delete(first["poll_path"].removeprefix("/api/v1"),
                              headers=bearer(first["request_token"])).json()["state"] == "cancelled"
    assert poll(broker, third).json()["position"] == 2
    assert poll(broker, second).json()["position"] == 1


def test_a_held_poll_answers_when_the_place_changes(broker) -> None:
    cancel_all(broker)
    first, second = ask(broker), ask(broker)
    answers: list[tuple[float, dict[str, Any]]] = []
    started = time.monotonic()

    def wait() -> None:
        response = poll(broker, second, wait=20, position=2)
        answers.append((time.monotonic() - started, response.json()))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    assert answers == [], "the poll must be held while nothing changes"
    broker.http.delete(first["poll_path"].removeprefix("/api/v1"), headers=bearer(first["request_token"]))
    waiter.join(15)
    assert answers and answers[0][1]["position"] == 1
    assert answers[0][0] < 5, f"the held poll answered only after {answers[0][0]:.1f} s"


def test_pickup_starts_a_connected_session_whose_host_token_is_the_request_secret(broker, admin) -> None:
    cancel_all(broker)
    created = ask(broker)
    picked = broker.http.post(f"/requests/{created['request_id']}/pickup", headers=admin)
    assert picked.status_code == 201, picked.text
    session = picked.json()["session"]
    assert session["state"] == "connected" and session["host"]["machine_name"] == "test-pc"
    assert session["ticket_id"] == created["ticket_id"]
    status = poll(broker, created).json()
    assert status["state"] == "picked" and status["position"] is None
    join = status["join"]
    assert join["session_id"] == session["id"] and join["ticket_id"] == created["ticket_id"]
    assert join["technician"]["username"] == "admin"
    assert join["signalling_path"] == f"/api/v1/sessions/{session['id']}/signal"
    assert "host_token" not in join
    # The request token works as the host token of the session (here: its events endpoint).
    events = broker.http.post(f"/sessions/{session['id']}/events", headers=bearer(created["request_token"]),
                              json={"events": []})
    assert events.status_code not in (401, 403), events.text
    ticket = broker.http.get(f"/tickets/{created['ticket_id']}", headers=admin).json()
    assert ticket["status"] == "open"
    assert ticket["assignee"]["username"] == "admin"
    assert audit_kinds(broker, session["id"])[:2] == ["session.created", "request.picked"]
    assert broker.http.get("/requests", headers=admin).json() == []
    # Cancelling now is refused: the session is the way to stop.
    late = broker.http.delete(created["poll_path"].removeprefix("/api/v1"), headers=bearer(created["request_token"]))
    assert late.status_code == 409 and late.json()["error"] == "request_taken"


def test_of_two_technicians_picking_at_once_exactly_one_wins(broker, admin, second_technician) -> None:
    for _ in range(3):
        created = ask(broker)
        results: list[httpx.Response] = []
        barrier = threading.Barrier(2)

        def pick(headers: dict[str, str], barrier: threading.Barrier, results: list[httpx.Response], request_id: str) -> None:
            with httpx.Client(base_url=broker.api, timeout=30) as client:
                barrier.wait()
                results.append(client.post(f"/requests/{request_id}/pickup", headers=headers))

        threads = [threading.Thread(target=pick, args=(h, barrier, results, created["request_id"]))
                   for h in (admin, second_technician)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [201, 409], [r.text for r in results]
        loser = next(r for r in results if r.status_code == 409).json()
        winner = next(r for r in results if r.status_code == 201).json()
        assert loser["error"] == "request_taken"
        assert winner["session"]["technician"]["display_name"] in loser["message"]
        assert broker.sql("SELECT count(*) FROM support_sessions WHERE ticket_id = ?", created["ticket_id"]) == [(1,)]


def test_a_cancelled_or_expired_request_cannot_be_picked_up(broker, admin) -> None:
    created = ask(broker)
    path = created["poll_path"].removeprefix("/api/v1")
    assert broker.http.delete(path, headers=bearer(created["request_token"])).status_code == 200
    assert broker.http.delete(path, headers=bearer(created["request_token"])).json()["state"] == "cancelled"
    refused = broker.http.post(f"/requests/{created['request_id']}/pickup", headers=admin)
    assert refused.status_code == 410 and refused.json()["error"] == "request_cancelled"
    assert poll(broker, created).json()["state"] == "cancelled"
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE ticket_id = ?", created["ticket_id"])]
    assert "request.cancelled" in kinds


def test_a_request_nobody_polls_expires_and_a_polled_one_does_not(broker, admin) -> None:
    idle, polled = ask(broker), ask(broker)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # A held poll of 3 s keeps ``polled`` alive through the 4 s idle limit.
        assert poll(broker, polled, wait=3, position=10_000).json()["state"] == "waiting"
        if broker.sql("SELECT state FROM help_requests WHERE id = ?", idle["request_id"]) == [("expired",)]:
            break
    else:
        pytest.fail("the unpolled request did not expire")
    assert poll(broker, idle).json()["state"] == "expired"
    assert poll(broker, polled).json()["state"] == "waiting"
    refused = broker.http.post(f"/requests/{idle['request_id']}/pickup", headers=admin)
    assert refused.status_code == 410 and refused.json()["error"] == "request_expired"
    ticket = broker.http.get(f"/tickets/{idle['ticket_id']}", headers=admin).json()
    assert any("expired" in c["body"] for c in ticket.get("comments", [])), ticket.get("comments")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"summary": "x" * 201}, "summary"),
        ({"name": ""}, "name"),
        ({"name": "Ann\x07"}, "name"),
        ({"summary": "two\nlines"}, "summary"),
        ({"details": "ok\x00"}, "details"),
        ({"email": "not-an-email"}, "email"),
        ({"priority": "whenever"}, "priority"),
        ({"machine_name": ""}, "machine_name"),
        ({"code": "123456789"}, "code"),
        ({"token": "dhh_guess"}, "token"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(broker, fields: dict[str, Any], named: str) -> None:
    response = broker.http.post("/requests", json={**REQUEST, **fields})
    assert response.status_code == 422, response.text
    assert named in response.json()["message"]


def test_a_wrong_token_is_refused_and_does_not_disturb_the_right_one(broker) -> None:
    mine, other = ask(broker), ask(broker)
    for token in (other["request_token"], "dhh_" + "A" * 43, "nonsense"):
        wrong = poll(broker, mine, token=token)
        assert wrong.status_code == 401, wrong.text
        refused = broker.http.delete(mine["poll_path"].removeprefix("/api/v1"), headers=bearer(token))
        assert refused.status_code == 401
    assert broker.http.get(mine["poll_path"].removeprefix("/api/v1"), params={"wait": 0}).status_code == 401
    assert poll(broker, mine).json()["state"] == "waiting"
    assert poll(broker, other).json()["state"] == "waiting"
    unknown = poll(broker, {**mine, "poll_path": "/api/v1/requests/00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 404
    assert broker.http.get(mine["poll_path"].removeprefix("/api/v1"), params={"wait": 99},
                           headers=bearer(mine["request_token"])).status_code == 422


def test_the_queue_is_for_ticket_readers_and_pickup_for_session_starters(broker, admin) -> None:
    make_user(broker, "aud", role="auditor", password=PASSWORD)
    auditor = bearer(broker.login("aud", PASSWORD))
    created = ask(broker)
    assert broker.http.post(f"/requests/{created['request_id']}/pickup", headers=auditor).status_code == 403
    assert broker.http.get("/requests").status_code == 401
    # The request's own token is not a technician's.
    assert broker.http.post(f"/requests/{created['request_id']}/pickup",
                            headers=bearer(created["request_token"])).status_code == 401


def test_a_flood_from_one_address_is_limited_and_the_queue_has_a_ceiling(start_broker) -> None:
    # Brokers alone: beside the module's on its Redis, they would share its count for 127.0.0.1 (the limit
    # shared by brokers is tests/integration/test_shared_limits.py's).
    limited = start_broker(DESKHAND_REQUESTS_PER_SOURCE="3", DESKHAND_REQUEST_QUEUE_MAX="1000")
    answers = [limited.http.post("/requests", json=REQUEST) for _ in range(10)]
    assert [a.status_code for a in answers] == [201] * 3 + [429] * 7
    assert int(answers[3].headers["Retry-After"]) > 0
    assert "too many help requests" in answers[3].json()["message"]
    assert limited.sql("SELECT count(*) FROM help_requests") == [(3,)]
    assert limited.sql("SELECT count(*) FROM audit_events WHERE kind = 'request.rate_limited'") == [(1,)]

    ceiling = start_broker(DESKHAND_REQUESTS_PER_SOURCE="100", DESKHAND_REQUEST_QUEUE_MAX="2")
    answers = [ceiling.http.post("/requests", json=REQUEST) for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 503, 503]
    assert answers[2].json()["error"] == "queue_full" and answers[2].headers["Retry-After"]
    assert ceiling.sql("SELECT count(*) FROM help_requests") == [(2,)]


# --- the survey ---------------------------------------------------------------------


def survey(broker, session_id: str, token: str, **body: Any) -> httpx.Response:
    return broker.http.post(f"/sessions/{session_id}/survey", headers=bearer(token), json=body)


def test_the_survey_opens_when_the_session_ended_and_takes_one_answer(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    early = survey(broker, session_id, host_token, rating=5)
    assert early.status_code == 409 and early.json()["error"] == "session_live"
    assert end_session(broker, admin, session_id, "fixed").status_code == 200
    answered = survey(broker, session_id, host_token, rating=4, comment="Quick and kind.\nThanks!")
    assert answered.status_code == 201, answered.text
    assert answered.json()["rating"] == 4
    again = survey(broker, session_id, host_token, rating=1)
    assert again.status_code == 409 and again.json()["error"] == "survey_answered"
    ticket_id = broker.sql("SELECT ticket_id FROM support_sessions WHERE id = ?", session_id)[0][0]
    rows = broker.sql("SELECT rating, comment FROM session_surveys WHERE session_id = ?", session_id)
    assert rows == [(4, "Quick and kind.\nThanks!")]
    comments = broker.sql(
        "SELECT kind, visibility, body, session_id FROM ticket_comments WHERE ticket_id = ? AND kind = 'survey'", ticket_id)
    assert comments == [("survey", "internal", "Satisfaction survey: 4/5\n\nQuick and kind.\nThanks!", session_id)]
    ticket = broker.http.get(f"/tickets/{ticket_id}", headers=admin).json()
    if "surveys" in ticket:
        assert [(s["rating"], s["comment"]) for s in ticket["surveys"]] == [(4, "Quick and kind.\nThanks!")]
    assert "survey.submitted" in audit_kinds(broker, session_id)


@pytest.mark.parametrize(
    ("body", "named"),
    [({"rating": 0}, "rating"), ({"rating": 6}, "rating"), ({"rating": "5"}, "rating"), ({"rating": True}, "rating"), ({}, "rating"),
     ({"rating": 3, "comment": "x" * 2001}, "comment"), ({"rating": 3, "comment": "bell\x07"}, "comment"),
     ({"rating": 3, "stars": 3}, "stars")],
)
def test_a_bad_survey_answer_is_refused_naming_the_field(broker, admin, body: dict[str, Any], named: str) -> None:
    session_id, host_token = paired_session(broker, admin)
    end_session(broker, admin, session_id)
    refused = survey(broker, session_id, host_token, **body)
    assert refused.status_code == 422, refused.text
    assert named in refused.json()["message"]
    assert broker.sql("SELECT count(*) FROM session_surveys WHERE session_id = ?", session_id) == [(0,)]


def test_only_the_sessions_own_host_answers_its_survey(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    other_id, other_token = paired_session(broker, admin)
    end_session(broker, admin, session_id)
    end_session(broker, admin, other_id)
    assert survey(broker, session_id, other_token, rating=5).status_code == 403
    technician = survey(broker, session_id, admin["Authorization"].removeprefix("Bearer "), rating=5)
    assert technician.status_code == 403
    assert broker.http.post(f"/sessions/{session_id}/survey", json={"rating": 5}).status_code == 401
    assert survey(broker, session_id, host_token, rating=2).status_code == 201


def test_a_picked_up_request_answers_its_survey_with_the_request_token(broker, admin) -> None:
    created = ask(broker)
    session = broker.http.post(f"/requests/{created['request_id']}/pickup", headers=admin).json()["session"]
    end_session(broker, admin, session["id"], "done")
    assert survey(broker, session["id"], created["request_token"], rating=5).status_code == 201
    assert broker.sql("SELECT ticket_id FROM session_surveys WHERE session_id = ?", session["id"]) == [
        (created["ticket_id"],)]


def test_the_survey_closes_a_day_after_the_session_ended(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    end_session(broker, admin, session_id)
    day_and_more_ago = (datetime.now(UTC) - timedelta(hours=25)).strftime("%Y-%m-%d %H:%M:%S")
    broker.sql("UPDATE support_sessions SET ended_at = ? WHERE id = ?", day_and_more_ago, session_id)
    late = survey(broker, session_id, host_token, rating=3)
    assert late.status_code == 410 and late.json()["error"] == "session_over", late.text
    assert "24 hours after the session ended" in late.json()["message"]
    assert broker.sql("SELECT count(*) FROM session_surveys WHERE session_id = ?", session_id) == [(0,)]
