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
