"""Small helpers for talking to a test broker's API with httpx."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.broker import BrokerProcess

HOST_BODY = {"machine_name": "test-pc", "os": "Linux 6", "user_name": "ann"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_ticket(broker: BrokerProcess, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"subject": "Printer offline", "requester_name": "Ann", "requester_email": "ann@example.com", **fields}
    response = httpx.post(broker.api + "/tickets", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def start_session(broker: BrokerProcess, headers: dict[str, str]) -> dict[str, Any]:
    """A new ticket and a session on it; returns the session-start answer (with the code)."""
    ticket = create_ticket(broker, headers)
    response = httpx.post(broker.api + "/sessions", json={"ticket_id": ticket["id"]}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def join(broker: BrokerProcess, code: str, **overrides: Any) -> httpx.Response:
    return httpx.post(broker.api + "/join", json={"code": code, **HOST_BODY, **overrides})
