"""No GET changes anything: any page can make a signed-in browser send one, cookie and all.

An ``<img>`` or ``<video>`` on another port of the same host is the same *site*, so
even a ``SameSite=Strict`` cookie goes along, and no CSRF token is asked of a GET.
So every GET route of the broker's own route table is called here, with real ids
(a recorded session, its ticket, a help request, the admin) and without, by a
signed-in browser's cookie and by a bearer token, and the whole database must be
exactly as it was after each: no audit event, no webhook delivery, no row changed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.support.api import create_ticket, end_session, join, start_session
from tests.support.broker import BrokerProcess
from tests.support.polling import wait_until
from tests.support.route_table import NOWHERE, broker_routes, fill
from tests.support.segments import put_segment, webm_segment

KPI_RANGE = {"from": "2026-01-01", "to": "2026-01-31"}


def database_state(broker: BrokerProcess) -> dict[str, str]:
    """table -> a hash of all its rows, in order."""
    with sqlite3.connect(broker.db_path, timeout=30) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        state = {}
        for table in tables:
            digest = hashlib.sha256()
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                digest.update(repr(row).encode())
            state[table] = digest.hexdigest()
        return state


@pytest.fixture(scope="module")
def signed_in_browser(broker: BrokerProcess) -> Iterator[httpx.Client]:
    """An HTTP client holding the admin's session cookie, as a browser would, and sending no CSRF token."""
    with httpx.Client(base_url=broker.api, timeout=30) as client:
        answer = client.post("/auth/login", json={"username": "admin", "password": broker.admin_password, "cookie": True})
        assert answer.status_code == 200 and client.cookies.get("deskhand_session"), answer.text
        yield client


def test_no_get_route_changes_anything(broker, admin, signed_in_browser, tmp_path) -> None:
    ticket = create_ticket(broker, admin)
    started = start_session(broker, admin, ticket["id"])
    joined = join(broker, started["code"]).json()
    session_id = joined["session_id"]
    assert put_segment(broker, session_id, joined["host_token"], 0, webm_segment(90), offset_ms=0).status_code == 204
    assert end_session(broker, admin, session_id).status_code == 200
    asked = broker.http.post("/requests", json={"name": "Ann", "summary": "Outlook", "machine_name": "pc", "os": "Linux",
                                                "user_name": "ann"}).json()
    withdrawn = broker.http.delete(asked["poll_path"].removeprefix("/api/v1"),
                                   headers={"Authorization": f"Bearer {asked['request_token']}"})
    assert withdrawn.status_code == 200, withdrawn.text  # nothing waits to expire while the routes are walked
    real = {**NOWHERE, "session_id": session_id, "ticket_id": str(ticket["id"]), "request_id": asked["request_id"],
            "username": "admin", "name": "admin"}
    wait_until(lambda: broker.sql("SELECT count(*) FROM audit_events WHERE hash IS NULL") == [(0,)],
               "the sealer to seal everything written so far")

    problems, calls = [], 0
    for route in broker_routes(tmp_path):
        if not isinstance(route.original_route, APIRoute) or "GET" not in route.methods:
            continue
        query = {p.alias for p in route.dependant.query_params}
        params = {**({"wait": "0"} if "wait" in query else {}), **(KPI_RANGE if "from" in query else {})}
        for values in (NOWHERE, real):
            path = fill(route.path, values)
            for who, client, headers in (("cookie", signed_in_browser, {}), ("bearer", broker.http, admin)):
                before = database_state(broker)
                answer = client.get(path, params=params, headers=headers)
                calls += 1
                changed = [table for table, digest in database_state(broker).items() if before.get(table) != digest]
                if changed or answer.status_code >= 500:
                    problems.append(f"GET {path} ({who}) -> {answer.status_code}: changed {', '.join(changed) or 'nothing'}")
    assert calls > 100, calls  # every GET route, twice over, as two identities
    assert problems == [], "GET routes with side effects:\n" + "\n".join(problems)
