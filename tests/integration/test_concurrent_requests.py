"""A fresh broker under 100 concurrent requests of each kind: every one answers, none with a 500.

The freeze this guards against: a request kept its database connection while it waited for a
thread, so beyond about 40 in flight every thread waited for a connection and every connection
for a thread; 30 s later came pool timeouts, ``database is locked`` and 500s. Now work waits for a
database slot without holding anything (``broker/storage/db_slots.py``), and what cannot wait is told
``503 broker_busy`` with ``Retry-After``. On SQLite and on PostgreSQL. Bounds here are generous:
this is about answers, not speed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.api import HOST_BODY, bearer, create_ticket, paired_session, start_session
from tests.support.broker import BrokerProcess
from tests.support.database import BrokerDatabases

pytestmark = pytest.mark.both_stacks

IN_FLIGHT = 100
ANSWER_WITHIN = 120.0
"""Seconds for all of a burst to answer: far above what it takes (a stall was 30 s per round)."""

Request = Callable[[httpx.AsyncClient, int], Any]


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    """Each test on SQLite and on PostgreSQL."""
    return broker_db.env()


def burst(broker: BrokerProcess, make: Request, count: int = IN_FLIGHT) -> list[httpx.Response]:
    """``count`` requests made by ``make(client, i)``, all in flight at once; their responses."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(base_url=broker.api, limits=limits, timeout=ANSWER_WITHIN) as client:
            return await asyncio.wait_for(
                asyncio.gather(*(make(client, i) for i in range(count))), ANSWER_WITHIN
            )

    return asyncio.run(run())


def assert_all_answered(responses: list[httpx.Response], success: int) -> None:
    """Every response is ``success`` or a well-formed 503 busy refusal; none a 500 or anything else."""
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {success, 503}, (statuses, [r.text for r in responses if r.status_code not in (success, 503)][:3])
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.json()["error"] == "broker_busy" and int(refused.headers["Retry-After"]) >= 1


def test_reads_of_the_signed_in_account(broker, admin) -> None:
    responses = burst(broker, lambda client, _i: client.get("/auth/me", headers=admin))
    assert_all_answered(responses, 200)
    assert sum(r.status_code == 200 for r in responses) == IN_FLIGHT  # the default queue holds them all


def test_ticket_lists_and_new_tickets(broker, admin) -> None:
    body = {"subject": "Printer offline", "requester_name": "Ann", "requester_email": "ann@example.com"}
    created = burst(broker, lambda client, i: client.post("/tickets", json={**body, "subject": f"burst {i}"}, headers=admin))
    assert_all_answered(created, 201)
    listed = burst(broker, lambda client, _i: client.get("/tickets", headers=admin))
    assert_all_answered(listed, 200)
    ids = {r.json()["id"] for r in created}
    assert len(ids) == IN_FLIGHT  # each its own ticket, none lost


def test_new_sessions(broker, admin) -> None:
    ticket = create_ticket(broker, admin)["id"]
    responses = burst(broker, lambda client, _i: client.post("/sessions", json={"ticket_id": ticket}, headers=admin))
    assert_all_answered(responses, 201)
    assert len({r.json()["code"] for r in responses}) == IN_FLIGHT


def test_valid_joins_from_one_address(broker, admin) -> None:
    codes = [start_session(broker, admin)["code"] for _ in range(IN_FLIGHT)]
    responses = burst(broker, lambda client, i: client.post("/join", json={"code": codes[i], **HOST_BODY}))
    # A busy broker may ask some to come back; it never calls a right code wrong.
    assert_all_answered(responses, 200)
    assert not [r for r in responses if r.status_code == 429]


def test_peer_event_batches(broker, admin) -> None:
    sessions = [paired_session(broker, admin) for _ in range(IN_FLIGHT)]
    now = datetime.now(UTC).isoformat()

    def post(client: httpx.AsyncClient, i: int) -> Any:
        session_id, host_token = sessions[i]
        events = [{"id": str(uuid.uuid4()), "kind": "chat.sent", "at": now, "data": {"text": f"hello {n}"}} for n in range(20)]
        return client.post(f"/sessions/{session_id}/events", json={"events": events}, headers=bearer(host_token))

    assert_all_answered(burst(broker, post), 200)


def test_sign_ins(broker) -> None:
    body = {"username": "admin", "password": broker.admin_password}
    assert_all_answered(burst(broker, lambda client, _i: client.post("/auth/login", json=body), count=40), 200)


@pytest.fixture
def tight_broker(start_broker: Callable[..., BrokerProcess], broker_db: BrokerDatabases) -> BrokerProcess:
    """A broker with one database slot and no queue: the second request at a time is refused."""
    return start_broker(**broker_db.env(), DESKHAND_DB_CONCURRENCY="1", DESKHAND_DB_QUEUE="0")


def test_work_beyond_the_queue_is_refused_with_retry_after_and_the_broker_recovers(tight_broker) -> None:
    admin = bearer(tight_broker.login())
    responses = burst(tight_broker, lambda client, _i: client.get("/tickets", headers=admin))
    assert_all_answered(responses, 200)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[503] > 0 and statuses[200] > 0, statuses
    assert "try again in" in next(r for r in responses if r.status_code == 503).json()["message"]
    # Nothing is stuck once the burst is over.
    assert tight_broker.http.get("/tickets", headers=admin).status_code == 200
