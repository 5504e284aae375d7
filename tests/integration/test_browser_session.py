"""Browser sign-in: the token in an HttpOnly cookie, and every change guarded by a CSRF token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from broker.accounts.browser_session import COOKIE_NAME, CSRF_HEADER
from tests.support.api import bearer, start_session

TICKET = {"subject": "Mail stuck", "requester_name": "Ann", "requester_email": "ann@example.com"}


@pytest.fixture
def signed_in(broker) -> Iterator[tuple[httpx.Client, httpx.Response]]:
    """A client that keeps cookies like a browser, signed in with ``cookie: true``; and the answer."""
    with httpx.Client(base_url=broker.api, timeout=15) as client:
        answer = client.post("/auth/login", json={"username": "admin", "password": broker.admin_password, "cookie": True})
        assert answer.status_code == 200, answer.text
        yield client, answer


def test_the_cookie_is_httponly_strict_and_the_token_stays_out_of_the_answer(signed_in) -> None:
    client, answer = signed_in
    header = answer.headers["set-cookie"].lower()
    assert header.startswith(f"{COOKIE_NAME}=") and "httponly" in header and "samesite=strict" in header
    body = answer.json()
    assert body["access_token"] is None and len(body["csrf_token"]) == 64
    assert client.cookies[COOKIE_NAME] not in answer.text
    assert client.get("/auth/me").json()["username"] == "admin"


def test_changes_need_the_csrf_token_and_reads_do_not(broker, signed_in) -> None:
    client, answer = signed_in
    csrf = answer.json()["csrf_token"]
    assert client.get("/tickets").status_code == 200
    missing = client.post("/tickets", json=TICKET)
    assert missing.status_code == 403 and missing.json()["error"] == "csrf_failed"
    assert CSRF_HEADER in missing.json()["message"]
    wrong = client.post("/tickets", json=TICKET, headers={CSRF_HEADER: "0" * 64})
    assert wrong.status_code == 403
    assert client.post("/tickets", json=TICKET, headers={CSRF_HEADER: csrf}).status_code == 201
    assert broker.sql("SELECT count(*) FROM tickets WHERE subject = 'Mail stuck'")[0][0] == 1


def test_signing_out_clears_the_cookie_and_revokes_the_token(broker, signed_in) -> None:
    client, answer = signed_in
    token = client.cookies[COOKIE_NAME]
    assert client.post("/auth/logout").status_code == 403  # a cross-site page could not sign you out either
    out = client.post("/auth/logout", headers={CSRF_HEADER: answer.json()["csrf_token"]})
    assert out.status_code == 204 and COOKIE_NAME in out.headers["set-cookie"]
    assert COOKIE_NAME not in client.cookies
    stale = httpx.get(broker.api + "/auth/me", cookies={COOKIE_NAME: token}, timeout=15)
    assert stale.status_code == 401


async def test_the_signed_in_browser_opens_signalling_only_from_the_brokers_own_origin(broker, signed_in) -> None:
    client, _answer = signed_in
    session = start_session(broker, bearer(broker.login()))  # the admin's session, as the cookie's owner
    cookie = {"Cookie": f"{COOKIE_NAME}={client.cookies[COOKIE_NAME]}"}
    own = broker.base_url
    async with websockets.connect(broker.ws_url(session["session"]["id"]), additional_headers={**cookie, "Origin": own}) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert welcome["type"] == "welcome" and welcome["role"] == "technician"
    for origin in ("https://evil.example", None):
        headers = {**cookie, **({"Origin": origin} if origin else {})}
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(broker.ws_url(session["session"]["id"]), additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403 and b"cross_origin" in refused.value.response.body


def test_session_peer_routes_take_the_cookie_with_csrf(broker, signed_in) -> None:
    client, answer = signed_in
    session_id = start_session(broker, bearer(broker.login()))["session"]["id"]
    assert client.get(f"/sessions/{session_id}/transfers").status_code == 200
    offer = {"name": "a.txt", "size": 3, "direction": "to_host"}
    assert client.post(f"/sessions/{session_id}/transfers", json=offer).json()["error"] == "csrf_failed"
    with_csrf = client.post(f"/sessions/{session_id}/transfers", json=offer, headers={CSRF_HEADER: answer.json()["csrf_token"]})
    assert with_csrf.status_code != 403 or with_csrf.json()["error"] != "csrf_failed", with_csrf.text
