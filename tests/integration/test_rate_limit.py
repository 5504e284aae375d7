"""Guessing codes: wrong ones are limited per source, audited, and block even a right one."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.support.api import HOST_BODY, bearer, join, start_session

LIMIT = 5


def wrong_code(i: int) -> str:
    """A code no session has: distinctive digits, so a leak into the database would show."""
    return f"31415{i:04d}"


def code_events(broker) -> list[tuple[object, ...]]:
    return broker.sql("SELECT kind, actor, source, data FROM audit_events WHERE kind LIKE 'code.%' ORDER BY id")


def assert_no_codes_stored(broker, codes: list[str]) -> None:
    """No code, in any spelling, appears anywhere in the audit trail or the sessions."""
    dump = str(broker.sql("SELECT * FROM audit_events")) + str(broker.sql("SELECT * FROM support_sessions"))
    for code in codes:
        for spelling in (code, f"{code[:3]} {code[3:6]} {code[6:]}", f"{code[:3]}-{code[3:6]}-{code[6:]}"):
            assert spelling not in dump


def test_a_burst_of_wrong_codes_is_limited_audited_and_blocks_even_a_right_code(start_broker) -> None:
    broker = start_broker(DESKHAND_CODE_FAILURES_PER_SOURCE=str(LIMIT))
    headers = bearer(broker.login())
    # Right codes never count: more successes than the limit allows failures.
    for _ in range(LIMIT + 1):
        assert join(broker, start_session(broker, headers)["code"]).status_code == 200
    started = start_session(broker, headers)
    guesses = [wrong_code(i) for i in range(LIMIT + 3)]
    responses = [join(broker, code) for code in guesses]
    assert [r.status_code for r in responses] == [404] * LIMIT + [429] * 3
    assert all(r.headers["retry-after"] for r in responses[LIMIT:])
    limited = join(broker, started["code"])
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60 and f"{retry_after} s" in limited.json()["message"]

    events = code_events(broker)
    failed = [e for e in events if e[0] == "code.redeem_failed"]
    blocks = [e for e in events if e[0] == "code.rate_limited"]
    assert len(failed) == LIMIT and all(actor == "anonymous" and source == "127.0.0.1" for _k, actor, source, _d in failed)
    assert all('"reason": "unknown"' in str(data) for *_rest, data in failed)
    assert len(blocks) == 1
    assert len([e for e in events if e[0] == "code.redeemed"]) == LIMIT + 1
    assert_no_codes_stored(broker, [*guesses, started["code"]])
    # The session whose code was refused while blocked is untouched.
    assert broker.sql("SELECT state FROM support_sessions WHERE id = ?", started["session"]["id"]) == [("waiting",)]


def test_concurrent_guesses_get_no_more_tries_than_sequential_ones(start_broker) -> None:
    broker = start_broker(DESKHAND_CODE_FAILURES_PER_SOURCE=str(LIMIT))
    guesses = [wrong_code(i) for i in range(40)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(guesses))) as client:
            return await asyncio.gather(
                *(client.post(broker.api + "/join", json={"code": code, **HOST_BODY}) for code in guesses)
            )

    statuses = Counter(r.status_code for r in asyncio.run(burst()))
    assert statuses == {404: LIMIT, 429: len(guesses) - LIMIT}
    kinds = Counter(kind for kind, *_ in code_events(broker))
    assert kinds == {"code.redeem_failed": LIMIT, "code.rate_limited": 1}
    assert_no_codes_stored(broker, guesses)


def concurrent_joins(broker, codes: list[str]) -> list[httpx.Response]:
    """Redeem every code of ``codes`` at once from 127.0.0.1, all in flight together."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(codes)), timeout=60) as client:
            return await asyncio.gather(
                *(client.post(broker.api + "/join", json={"code": code, **HOST_BODY}) for code in codes)
            )

    return asyncio.run(burst())


def test_thirty_valid_joins_in_flight_from_one_address_all_succeed(start_broker) -> None:
    """Behind one NAT everybody shares an address: busy is not wrong (default limits, 10 a source)."""
    broker = start_broker()
    headers = bearer(broker.login())
    codes = [start_session(broker, headers)["code"] for _ in range(30)]
    responses = concurrent_joins(broker, codes)
    assert [r.status_code for r in responses] == [200] * 30, [r.text for r in responses if r.status_code != 200]
    assert len({r.json()["session_id"] for r in responses}) == 30
    kinds = Counter(kind for kind, *_ in code_events(broker))
    assert kinds == {"code.issued": 30, "code.redeemed": 30}
    # And the address is not blocked afterwards: a wrong code is judged, not refused.
    assert join(broker, wrong_code(0)).status_code == 404


def test_thirty_concurrent_wrong_codes_from_one_address_get_the_limit_checked_and_no_more(start_broker) -> None:
    broker = start_broker()  # the default: 10 failures a source
    guesses = [wrong_code(i) for i in range(30)]
    statuses = Counter(r.status_code for r in concurrent_joins(broker, guesses))
    assert statuses == {404: 10, 429: 20}
    events = code_events(broker)
    assert Counter(kind for kind, *_ in events) == {"code.redeem_failed": 10, "code.rate_limited": 1}
    assert_no_codes_stored(broker, guesses)
