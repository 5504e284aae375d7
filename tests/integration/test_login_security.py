"""Password policy, lockout, per-source limits and TOTP, against a real broker and its SQLite file.

Accounts are put straight into the broker's database (``make_user``), so these
tests depend on nothing but the sign-in routes. TOTP codes come from pyotp with
the secret the broker handed out; ``code_at(secret, +30)`` is the next step's
code, which the broker accepts (one step of drift either way), so no test waits
for the clock.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.support.accounts import PASSWORD, code_at, make_user
from tests.support.api import bearer


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    """The shared broker's tests fail sign-ins on purpose; no limit should interfere across tests."""
    return {"DESKHAND_LOGIN_FAILURES_BEFORE_LOCK": "1000", "DESKHAND_LOGIN_FAILURES_PER_SOURCE": "1000"}


def login(broker, username: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
    return broker.http.post("/auth/login", json={"username": username, "password": password, **extra})


def token_of(broker, username: str, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    response = login(broker, username, password, **extra)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def enrol(broker, headers: dict[str, str]) -> tuple[str, list[str], str]:
    """Enrol and confirm TOTP; (secret, recovery codes, the code that confirmed it, now used).

    The code is returned rather than computed again: a 30 s step may end in between.
    """
    started = broker.http.post("/auth/totp/enroll", headers=headers)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    code = code_at(secret)
    confirmed = broker.http.post("/auth/totp/confirm", json={"code": code}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"], code


def account(broker, username: str) -> tuple[Any, ...]:
    return broker.sql("SELECT failed_logins, locked_until, password_changed_at FROM users WHERE username = ?", username)[0]


def events(broker, kind: str) -> list[dict[str, Any]]:
    return [json.loads(data) for (data,) in broker.sql("SELECT data FROM audit_events WHERE kind = ? ORDER BY id", kind)]


def expire_lock(broker, username: str) -> None:
    """Move the account's lock into the past (instead of waiting for it)."""
    broker.sql("UPDATE users SET locked_until = '2000-01-01 00:00:00.000000' WHERE username = ?", username)


def assert_refused(response: httpx.Response, status: int, error: str, words: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and words in response.json()["message"], response.text


# --- password policy ----------------------------------------------------------------------


@pytest.mark.parametrize(("new_password", "words"), [
    ("short-pw1", "at least 12 characters"),
    ("pat-the-policy-tester", "account name"),
    ("Password1234", "most common"),
    ("QWERTYUIOP", "at least 12"),  # too short and common: the first rule broken is named
])
def test_a_password_change_breaking_the_policy_names_the_rule(broker, new_password: str, words: str) -> None:
    if not broker.sql("SELECT 1 FROM users WHERE username = 'pat-the-policy-tester'"):
        make_user(broker, "pat-the-policy-tester")
    response = broker.http.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": new_password},
        headers=token_of(broker, "pat-the-policy-tester"),
    )
    assert_refused(response, 422, "weak_password", words)
    assert account(broker, "pat-the-policy-tester")[2] is None


def test_a_good_password_change_is_stamped_and_the_minimum_is_configurable(start_broker) -> None:
    broker = start_broker(DESKHAND_PASSWORD_MIN_LENGTH="20")
    make_user(broker, "quinn")
    headers = token_of(broker, "quinn")
    short = broker.http.post("/auth/password", json={"current_password": PASSWORD, "new_password": "nineteen chars ok.."},
                             headers=headers)
    assert_refused(short, 422, "weak_password", "at least 20 characters")
    ok = broker.http.post("/auth/password", json={"current_password": PASSWORD, "new_password": "twenty characters, ok"},
                          headers=headers)
    assert ok.status_code == 204, ok.text
    assert account(broker, "quinn")[2] is not None
    assert login(broker, "quinn", "twenty characters, ok").status_code == 200


# --- lockout ------------------------------------------------------------------------------


def test_failures_lock_the_account_with_a_doubling_delay_even_for_the_right_password(start_broker) -> None:
    broker = start_broker(DESKHAND_LOGIN_FAILURES_BEFORE_LOCK="3", DESKHAND_LOGIN_LOCK_SECONDS="30",
                          DESKHAND_LOGIN_FAILURES_PER_SOURCE="1000")
    make_user(broker, "lee")
    for _ in range(2):
        assert_refused(login(broker, "lee", "wrong password!"), 401, "bad_credentials")
    assert account(broker, "lee")[:2] == (2, None)
    assert_refused(login(broker, "lee", "wrong password!"), 401, "bad_credentials")  # the third locks

    locked = login(broker, "lee")  # the right password, refused while locked
    assert_refused(locked, 429, "account_locked", "try again in")
    assert 29 <= int(locked.headers["retry-after"]) <= 30
    assert "UTC)" in locked.json()["message"]

    delays = []
    for _ in range(8):  # each further failure doubles the lock, up to an hour
        expire_lock(broker, "lee")
        assert_refused(login(broker, "lee", "wrong password!"), 401, "bad_credentials")
        delays.append(int(login(broker, "lee").headers["retry-after"]))
    assert [round(d / 30) * 30 for d in delays] == [60, 120, 240, 480, 960, 1920, 3600, 3600]

    expire_lock(broker, "lee")
    assert login(broker, "lee").status_code == 200
    assert account(broker, "lee")[:2] == (0, None)  # success starts the count again

    locks = events(broker, "auth.locked")
    assert [e["seconds"] for e in locks] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    reasons = Counter(e["reason"] for e in events(broker, "auth.login_failed"))
    assert reasons == {"password": 11, "locked": 9}
    assert "wrong password!" not in str(broker.sql("SELECT * FROM audit_events"))


def test_concurrent_failures_are_each_counted(start_broker) -> None:
    broker = start_broker(DESKHAND_LOGIN_FAILURES_BEFORE_LOCK="1000", DESKHAND_LOGIN_FAILURES_PER_SOURCE="1000")
    make_user(broker, "kim")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=broker.api, timeout=60) as client:
            return await asyncio.gather(*(
                client.post("/auth/login", json={"username": "kim", "password": f"wrong-{i}"}) for i in range(12)
            ))

    assert {r.status_code for r in asyncio.run(burst())} == {401}
    assert account(broker, "kim")[0] == 12


def test_one_source_is_throttled_without_blocking_other_sources(start_broker) -> None:
    broker = start_broker(DESKHAND_LOGIN_FAILURES_PER_SOURCE="4")
    make_user(broker, "max")
    for i in range(4):  # unknown accounts too: guessing names is guessing
        assert_refused(login(broker, f"ghost{i}", "nope nope nope"), 401, "bad_credentials")
    limited = login(broker, "max")
    assert_refused(limited, 429, "rate_limited", "this address")
    assert 1 <= int(limited.headers["retry-after"]) <= 60

    # Another address (any 127.x reaches the broker on Linux) signs in at once.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=broker.api, transport=transport, timeout=15) as other:
        response = other.post("/auth/login", json={"username": "max", "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert account(broker, "max")[0] == 0  # the throttled attempt never reached the account
    assert len(events(broker, "auth.rate_limited")) == 1


def test_successful_sign_ins_do_not_use_up_the_source_limit(start_broker) -> None:
    broker = start_broker(DESKHAND_LOGIN_FAILURES_PER_SOURCE="2")
    make_user(broker, "ora")
    for _ in range(5):
        assert login(broker, "ora").status_code == 200


# --- TOTP ---------------------------------------------------------------------------------


def test_enrolment_gives_a_secret_uri_and_recovery_codes_stored_only_as_hashes(broker) -> None:
    make_user(broker, "tess")
    headers = token_of(broker, "tess")
    assert_refused(broker.http.post("/auth/totp/confirm", json={"code": "123456"}, headers=headers),
                   409, "totp_not_enrolling")
    started = broker.http.post("/auth/totp/enroll", headers=headers).json()
    assert started["provisioning_uri"].startswith("otpauth://totp/Deskhand:tess?")
    assert "issuer=Deskhand" in started["provisioning_uri"] and started["secret"] in started["provisioning_uri"]
    # Not in force before it is confirmed.
    assert login(broker, "tess").status_code == 200

    wrong = code_at(started["secret"], -600)
    assert_refused(broker.http.post("/auth/totp/confirm", json={"code": wrong}, headers=headers), 400, "totp_invalid")
    confirmed = broker.http.post("/auth/totp/confirm", json={"code": code_at(started["secret"])}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10 and all(len(c) == 19 and c.count("-") == 3 for c in codes)

    stored = str(broker.sql("SELECT * FROM recovery_codes")) + str(broker.sql("SELECT * FROM audit_events"))
    assert not any(c in stored or c.replace("-", "") in stored for c in codes)
    assert started["secret"] not in str(broker.sql("SELECT * FROM audit_events"))
    assert events(broker, "auth.totp_enrolled")[-1]["recovery_codes"] == 10
    assert_refused(broker.http.post("/auth/totp/enroll", headers=headers), 409, "totp_enabled")


def test_sign_in_with_totp_refuses_missing_wrong_replayed_and_malformed_codes(start_broker) -> None:
    broker = start_broker(DESKHAND_LOGIN_FAILURES_BEFORE_LOCK="50")
    make_user(broker, "uma")
    secret, _codes, used = enrol(broker, token_of(broker, "uma"))

    assert_refused(login(broker, "uma"), 401, "totp_required", "totp_code")
    assert_refused(login(broker, "uma", "wrong password!"), 401, "bad_credentials")  # no hint the account has TOTP
    assert_refused(login(broker, "uma", totp_code=code_at(secret, -600)), 401, "totp_invalid")
    assert_refused(login(broker, "uma", totp_code=used), 401, "totp_invalid", "already used")

    fresh = code_at(secret, +30)
    ok = login(broker, "uma", totp_code=fresh[:3] + " " + fresh[3:])
    assert ok.status_code == 200, ok.text
    assert_refused(login(broker, "uma", totp_code=fresh), 401, "totp_invalid")  # replayed

    for bad in ("12345", "1234567", "abcdef", "12345x"):
        assert_refused(login(broker, "uma", totp_code=bad), 422, "invalid_request", "6 digits")
    both = login(broker, "uma", totp_code="123456", recovery_code="2345-6789-abcd-efgh")
    assert_refused(both, 422, "invalid_request", "not both")

    assert Counter(e["reason"] for e in events(broker, "auth.login_failed")) == {"password": 1, "totp": 3}
    assert account(broker, "uma")[0] == 1  # the good sign-in reset the count; the replay counts


def test_wrong_codes_count_towards_the_lock(start_broker) -> None:
    broker = start_broker(DESKHAND_LOGIN_FAILURES_BEFORE_LOCK="2")
    make_user(broker, "val")
    secret, _codes, _used = enrol(broker, token_of(broker, "val"))
    for _ in range(2):
        assert_refused(login(broker, "val", totp_code=code_at(secret, -600)), 401, "totp_invalid")
    assert_refused(login(broker, "val", totp_code=code_at(secret, +30)), 429, "account_locked")


def test_a_recovery_code_works_once(broker) -> None:
    make_user(broker, "wes")
    _secret, codes, _used = enrol(broker, token_of(broker, "wes"))
    assert login(broker, "wes", recovery_code=codes[0].upper().replace("-", " ")).status_code == 200
    assert_refused(login(broker, "wes", recovery_code=codes[0]), 401, "totp_invalid")
    assert_refused(login(broker, "wes", recovery_code="2345-6789-abcd-efgh"), 401, "totp_invalid")
    assert_refused(login(broker, "wes", recovery_code="not-a-code"), 422, "invalid_request", "recovery code")
    assert login(broker, "wes", recovery_code=codes[1]).status_code == 200
    assert [e["remaining"] for e in events(broker, "auth.recovery_code_used")][-2:] == [9, 8]


def test_concurrent_uses_of_one_code_let_exactly_one_through(broker) -> None:
    make_user(broker, "xia")
    secret, codes, _used = enrol(broker, token_of(broker, "xia"))

    async def burst(**second_factor: str) -> Counter[int]:
        async with httpx.AsyncClient(base_url=broker.api, timeout=60) as client:
            responses = await asyncio.gather(*(
                client.post("/auth/login", json={"username": "xia", "password": PASSWORD, **second_factor})
                for _ in range(6)
            ))
        return Counter(r.status_code for r in responses)

    assert asyncio.run(burst(totp_code=code_at(secret, +30))) == {200: 1, 401: 5}
    assert asyncio.run(burst(recovery_code=codes[0])) == {200: 1, 401: 5}


def test_disabling_needs_the_password_and_a_code(broker) -> None:
    make_user(broker, "yan")
    headers = token_of(broker, "yan")
    url = "/auth/totp/disable"
    assert_refused(broker.http.post(url, json={"password": PASSWORD, "code": "123456"}, headers=headers),
                   409, "totp_not_enabled")
    secret, codes, _used = enrol(broker, headers)
    fresh = code_at(secret, +30)
    assert_refused(broker.http.post(url, json={"password": "wrong password!", "code": fresh}, headers=headers),
                   403, "bad_credentials")
    assert_refused(broker.http.post(url, json={"password": PASSWORD, "code": code_at(secret, -600)}, headers=headers),
                   403, "totp_invalid")
    assert_refused(broker.http.post(url, json={"password": PASSWORD, "code": "12-34"}, headers=headers),
                   422, "invalid_request", "recovery codes")
    done = broker.http.post(url, json={"password": PASSWORD, "code": codes[3]}, headers=headers)
    assert done.status_code == 204, done.text
    assert login(broker, "yan").status_code == 200  # no code needed any more
    assert broker.sql("SELECT totp_secret, totp_enabled_at FROM users WHERE username = 'yan'") == [(None, None)]
    assert broker.sql("SELECT count(*) FROM recovery_codes WHERE user_id = (SELECT id FROM users WHERE username = 'yan')") == [(0,)]
    assert len(events(broker, "auth.totp_disabled")) == 1


def test_a_role_requiring_totp_confines_the_token_until_enrolment(start_broker) -> None:
    broker = start_broker()
    make_user(broker, "zoe")
    broker.sql("UPDATE roles SET require_totp = 1 WHERE name = 'technician'")
    response = login(broker, "zoe")
    assert response.status_code == 200 and response.json()["totp_enrollment_required"] is True
    headers = bearer(response.json()["access_token"])

    assert_refused(broker.http.get("/tickets", headers=headers), 403, "totp_enrollment_required", "totp enroll")
    assert_refused(broker.http.get("/sessions/7f1d2c3b-0000-4000-8000-000000000000/transfers", headers=headers),
                   403, "totp_enrollment_required")
    assert broker.http.get("/auth/me", headers=headers).status_code == 200
    enrol(broker, headers)
    assert broker.http.get("/tickets", headers=headers).status_code == 200  # the same token, now enrolled
    assert login(broker, "zoe").status_code == 401  # and from now on with a code
    assert login(broker, "admin", broker.admin_password).json()["totp_enrollment_required"] is False
