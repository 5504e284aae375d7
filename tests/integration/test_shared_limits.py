"""Limits every broker shares through Redis (``DESKHAND_REDIS_URL``).

Two brokers allow no more wrong support codes, failed sign-ins or help requests from one
address than one broker, one after another or all at once, and carry out a signed inbound
request once. A Redis that does not answer is a 503 that says so, never a 500 and never an
unlimited guess.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.integration.test_help_requests import REQUEST
from tests.integration.test_peer_abuse import event, post_events
from tests.integration.test_rate_limit import code_events, wrong_code
from tests.integration.test_webhooks import send
from tests.support.api import HOST_BODY, bearer, join, paired_session, start_session
from tests.support.broker import BrokerProcess
from tests.support.redis_server import RedisServer

LIMIT = 5


def test_two_brokers_allow_one_limit_at_each_door(redis_server: RedisServer, tmp_path: Path) -> None:
    """Support codes, sign-ins and help requests spread over two brokers one after another; an inbound
    webhook request accepted by one is a replay to the other."""
    redis_server.flush()
    env = {"DESKHAND_REDIS_URL": redis_server.url, "DESKHAND_CODE_FAILURES_PER_SOURCE": str(LIMIT),
           "DESKHAND_LOGIN_FAILURES_PER_SOURCE": "3", "DESKHAND_REQUESTS_PER_SOURCE": "2"}
    data_dir = tmp_path / "data"
    with BrokerProcess.start(env, data_dir=data_dir) as first, BrokerProcess.start(env, data_dir=data_dir) as second:
        # A right code is no failure, on either broker.
        admin = bearer(first.login())
        for broker in (first, second, first):
            assert join(broker, start_session(first, admin)["code"]).status_code == 200
        answers = [join((first, second)[n % 2], wrong_code(n)).status_code for n in range(2 * LIMIT)]
        assert answers == [404] * LIMIT + [429] * LIMIT, answers
        started = start_session(first, admin)
        refused = join(second, started["code"])
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60, refused.text
        failed = [e for e in code_events(first) if e[0] == "code.redeem_failed"]
        assert len(failed) == LIMIT
        assert len([e for e in code_events(first) if e[0] == "code.rate_limited"]) == 1

        wrong = {"username": "nobody", "password": "not the password"}
        signed = [(first, second)[n % 2].http.post("/auth/login", json=wrong).status_code for n in range(5)]
        assert signed == [401, 401, 401, 429, 429], signed
        asked = [(first, second)[n % 2].http.post("/requests", json=REQUEST).status_code for n in range(4)]
        assert asked == [201, 201, 429, 429], asked

        # A signed inbound request captured on its way to one broker and sent again to the other.
        made = first.http.post("/inbound-sources", headers=admin, json={"system": "jira"})
        assert made.status_code == 201, made.text
        secret, at = str(made.json()["secret"]).encode(), int(time.time())
        ticket = {"external_key": "J-1", "subject": "Printer", "requester_name": "Kim"}
        assert send(first, "jira", secret, ticket, at=at).status_code == 201
        replayed = send(second, "jira", secret, ticket, at=at)
        assert replayed.status_code == 401, replayed.text
        assert first.sql("SELECT count(*) FROM tickets WHERE external_key = 'J-1'") == [(1,)]

        # Someone with Redis wipes the shared counts: each broker's own count still stands (here the first
        # broker had 3 of its 5 wrong codes), so guesses fall back to the limit per broker, never unlimited.
        redis_server.flush()
        again = [join(first, wrong_code(100 + n)).status_code for n in range(3)]
        assert again == [404, 404, 429], again


def test_a_peers_event_rate_is_one_rate_however_its_batches_are_spread_over_two_brokers(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """A host posting its events to two brokers in turn gets one burst and one rate, not one of each per broker."""
    env = {"DESKHAND_REDIS_URL": redis_server.url, "DESKHAND_PEER_EVENTS_PER_SECOND": "1",
           "DESKHAND_PEER_EVENT_BURST": "500"}
    data_dir = tmp_path / "data"
    with BrokerProcess.start(env, data_dir=data_dir) as first, BrokerProcess.start(env, data_dir=data_dir) as second:
        admin = bearer(first.login())
        session_id, host = paired_session(first, admin)
        answers = [post_events((first, second)[b % 2], session_id, host, [event(f"events-{b}-{n:03d}") for n in range(200)])
                   for b in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 429, 429], [a.text for a in answers]
        assert int(answers[2].headers["retry-after"]) >= 60, "100 events short at one a second"
        # The technician's bucket is its own, on either broker.
        tech = post_events(second, session_id, first.login(), [event(f"technician-{n:03d}") for n in range(200)])
        assert tech.status_code == 200, tech.text


def test_wrong_codes_sent_at_once_to_two_brokers_are_counted_to_the_limit_and_no_further(
    redis_server: RedisServer, tmp_path: Path,
) -> None:
    redis_server.flush()
    env = {"DESKHAND_REDIS_URL": redis_server.url, "DESKHAND_CODE_FAILURES_PER_SOURCE": str(LIMIT)}
    data_dir = tmp_path / "data"
    with BrokerProcess.start(env, data_dir=data_dir) as first, BrokerProcess.start(env, data_dir=data_dir) as second:

        async def guess_all() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                sent = [client.post(f"{(first, second)[n % 2].api}/join", json={**HOST_BODY, "code": wrong_code(n)})
                        for n in range(30)]
                return [answer.status_code for answer in await asyncio.gather(*sent)]

        answers = Counter(asyncio.run(guess_all()))
        assert answers[404] == LIMIT and answers[404] + answers[429] == 30, answers
        assert len([e for e in code_events(first) if e[0] == "code.redeem_failed"]) == LIMIT


def test_right_codes_sent_at_once_from_one_address_to_two_brokers_all_join(redis_server: RedisServer,
                                                                            tmp_path: Path) -> None:
    """Thirty hosts behind one NAT join at once through two brokers: more than the limit are being
    checked at once across the brokers, and each waits for its turn instead of being refused."""
    redis_server.flush()
    env = {"DESKHAND_REDIS_URL": redis_server.url, "DESKHAND_CODE_FAILURES_PER_SOURCE": str(LIMIT)}
    data_dir = tmp_path / "data"
    with BrokerProcess.start(env, data_dir=data_dir) as first, BrokerProcess.start(env, data_dir=data_dir) as second:
        admin = bearer(first.login())
        codes = [start_session(first, admin)["code"] for _ in range(30)]

        async def join_all() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                sent = [client.post(f"{(first, second)[n % 2].api}/join", json={**HOST_BODY, "code": code})
                        for n, code in enumerate(codes)]
                return [answer.status_code for answer in await asyncio.gather(*sent)]

        assert Counter(asyncio.run(join_all())) == {200: 30}
        assert not [e for e in code_events(first) if e[0] in ("code.redeem_failed", "code.rate_limited")]


def test_while_redis_is_down_codes_and_sign_ins_are_refused_with_a_503_and_the_rest_goes_on(tmp_path: Path) -> None:
    with RedisServer.start() as own, BrokerProcess.start({"DESKHAND_REDIS_URL": own.url}, data_dir=tmp_path / "data") as broker:
        admin = bearer(broker.login())
        started = start_session(broker, admin)
        own.stop()
        for answer in (join(broker, started["code"]),
                       broker.http.post("/auth/login", json={"username": "admin", "password": "whatever"})):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "shared_state_unreachable", answer.text
            assert "DESKHAND_REDIS_URL" in answer.json()["message"] and answer.headers["retry-after"] == "2"
        # A signed-in technician goes on working; the code was not used up.
        assert broker.http.get("/tickets", headers=admin).status_code == 200
        assert broker.sql("SELECT state FROM support_sessions WHERE id = ?", started["session"]["id"]) == [("waiting",)]
        assert "Traceback" not in broker.output_text(300)
