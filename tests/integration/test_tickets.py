"""Tickets: creation, listing, and refusal of bad input without storing anything."""

from __future__ import annotations

import pytest

from tests.support.api import create_ticket
from tests.support.database import BrokerDatabases
from tests.support.in_process import AppBroker

pytestmark = pytest.mark.both_stacks

GOOD = {"subject": "VPN down", "requester_name": "Bob", "requester_email": "bob@example.com"}


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    """On SQLite, then on PostgreSQL."""
    return broker_db.env()


@pytest.fixture(scope="module")
def broker(in_process_broker: AppBroker) -> AppBroker:
    """The rules of tickets need no server: the app in this process (the domain tier)."""
    return in_process_broker


def stored_counts(broker) -> tuple[int, int]:
    """(tickets, ticket.created audit events) in the broker's database."""
    tickets = broker.sql("SELECT count(*) FROM tickets")[0][0]
    events = broker.sql("SELECT count(*) FROM audit_events WHERE kind = 'ticket.created'")[0][0]
    return tickets, events


def test_create_list_and_show(broker, admin) -> None:
    ticket = create_ticket(broker, admin, subject="Mail stuck – Ümlaut", priority="high", description="since 9:00\nurgent-ish")
    # Written before the answer came back: the row and its audit event are there already.
    assert broker.sql("SELECT subject, priority FROM tickets WHERE id = ?", ticket["id"]) == [("Mail stuck – Ümlaut", "high")]
    assert broker.sql("SELECT actor FROM audit_events WHERE kind = 'ticket.created' AND ticket_id = ?", ticket["id"]) == [("user:admin",)]
    assert ticket["priority"] == "high" and ticket["status"] == "new" and ticket["sessions"] == []
    assert ticket["created_by"]["username"] == "admin"
    assert ticket["requester_email"] == "ann@example.com"

    other = create_ticket(broker, admin)
    assert other["priority"] == "normal" and other["description"] == ""
    listed = broker.http.get("/tickets", headers=admin).json()
    assert [t["id"] for t in listed[:2]] == [other["id"], ticket["id"]]  # newest first
    assert listed[1]["session_count"] == 0 and "description" not in listed[1]

    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["description"] == "since 9:00\nurgent-ish" and shown["subject"] == "Mail stuck – Ümlaut"


def test_the_subject_may_be_exactly_200_characters(broker, admin) -> None:
    assert len(create_ticket(broker, admin, subject="x" * 200)["subject"]) == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": None}, "subject"),
        ({"requester_email": None}, "requester_email"),
        ({"requester_email": "not-an-email"}, "requester_email"),
        ({"requester_email": "ann@"}, "requester_email"),
        ({"subject": "line\x07bell"}, "subject"),
        ({"subject": "two\nlines"}, "subject"),
        ({"requester_name": "Bob\x1b[31m"}, "requester_name"),
        ({"subject": "x" * 201}, "subject"),
        ({"subject": ""}, "subject"),
        ({"subject": "  padded  "}, "subject"),
        ({"subject": 42}, "subject"),
        ({"priority": "whenever"}, "priority"),
        ({"surprise": "field"}, "surprise"),
        ({"description": "nul\x00byte"}, "description"),
    ],
)
def test_bad_ticket_input_is_refused_with_its_field_named_and_nothing_stored(broker, admin, change, field) -> None:
    before = stored_counts(broker)
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    response = broker.http.post("/tickets", json=body, headers=admin)
    assert response.status_code == 422
    error = response.json()
    assert {"error", "message"} <= set(error)
    assert error["error"] == "invalid_request" and field in error["message"]
    assert stored_counts(broker) == before


def test_malformed_json_and_wrong_content_are_refused(broker, admin) -> None:
    before = stored_counts(broker)
    broken = broker.http.post("/tickets", content=b'{"subject": ', headers={**admin, "content-type": "application/json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["message"]
    listing = broker.http.post("/tickets", json=[GOOD], headers=admin)
    assert listing.status_code == 422 and listing.json()["error"] == "invalid_request"
    assert stored_counts(broker) == before


def test_tickets_need_a_login(broker) -> None:
    before = stored_counts(broker)
    assert broker.http.post("/tickets", json=GOOD).status_code == 401
    assert broker.http.get("/tickets").status_code == 401
    assert stored_counts(broker) == before


def test_unknown_and_absurd_ticket_ids(broker, admin) -> None:
    missing = broker.http.get("/tickets/999999", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert broker.http.get("/tickets/0", headers=admin).status_code == 422
    assert broker.http.get("/tickets/99999999999999999999999", headers=admin).status_code == 422
    assert broker.http.get("/tickets/abc", headers=admin).status_code == 422
    assert broker.http.get("/tickets?limit=100000", headers=admin).status_code == 422
