"""Tickets: creation, listing, and refusal of bad input without storing anything."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import create_ticket

GOOD = {"subject": "VPN down", "requester_name": "Bob", "requester_email": "bob@example.com"}


def ticket_count(broker) -> int:
    return broker.sql("SELECT count(*) FROM tickets")[0][0]


def test_create_list_and_show(broker, admin) -> None:
    ticket = create_ticket(broker, admin, subject="Mail stuck", priority="high", description="since 9:00\nurgent-ish")
    assert ticket["priority"] == "high" and ticket["status"] == "open" and ticket["sessions"] == []
    assert ticket["created_by"]["username"] == "admin"
    listed = httpx.get(broker.api + "/tickets", headers=admin).json()
    assert listed[0]["id"] == ticket["id"] and listed[0]["session_count"] == 0
    shown = httpx.get(broker.api + f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["description"] == "since 9:00\nurgent-ish"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": None}, "subject"),
        ({"requester_email": "not-an-email"}, "requester_email"),
        ({"subject": "line\x07bell"}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"subject": "  padded  "}, "subject"),
        ({"priority": "whenever"}, "priority"),
        ({"surprise": "field"}, "surprise"),
        ({"description": "nul\x00byte"}, "description"),
    ],
)
def test_bad_ticket_input_is_refused_with_its_field_named_and_nothing_stored(broker, admin, change, field) -> None:
    before = ticket_count(broker)
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    response = httpx.post(broker.api + "/tickets", json=body, headers=admin)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "invalid_request" and field in error["message"]
    assert ticket_count(broker) == before


def test_malformed_json_and_wrong_content_are_refused(broker, admin) -> None:
    before = ticket_count(broker)
    broken = httpx.post(broker.api + "/tickets", content=b'{"subject": ', headers={**admin, "content-type": "application/json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["message"]
    listing = httpx.post(broker.api + "/tickets", json=[GOOD], headers=admin)
    assert listing.status_code == 422
    assert ticket_count(broker) == before


def test_unknown_and_absurd_ticket_ids(broker, admin) -> None:
    assert httpx.get(broker.api + "/tickets/999999", headers=admin).status_code == 404
    assert httpx.get(broker.api + "/tickets/0", headers=admin).status_code == 422
    assert httpx.get(broker.api + "/tickets/99999999999999999999999", headers=admin).status_code == 422
    assert httpx.get(broker.api + "/tickets/abc", headers=admin).status_code == 422
    assert httpx.get(broker.api + "/tickets?limit=100000", headers=admin).status_code == 422
