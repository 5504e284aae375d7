"""Signing in, tokens and their refusal, against a real broker."""

from __future__ import annotations

import httpx

from broker.accounts.tokens import hash_token
from tests.support.api import bearer


def test_login_returns_a_token_that_works_and_a_password_change_flag(broker) -> None:
    response = broker.http.post("/auth/login", json={"username": "admin", "password": broker.admin_password})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["access_token"].startswith("dhu_")
    # Counted as changed by the test harness; test_first_password.py has the first password's own tests.
    assert body["password_change_required"] is False
    me = broker.http.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["username"] == "admin" and me.json()["is_admin"] is True


def test_wrong_password_and_unknown_user_get_the_same_401(broker) -> None:
    wrong = broker.http.post("/auth/login", json={"username": "admin", "password": "nope"})
    unknown = broker.http.post("/auth/login", json={"username": "ghost", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "bad_credentials", "message": "wrong username or password"}
    rows = broker.sql("SELECT actor, data FROM audit_events WHERE kind = 'auth.login_failed'")
    assert len(rows) >= 2 and all("nope" not in str(data) for _actor, data in rows)


def test_missing_malformed_and_unknown_tokens_get_401_with_www_authenticate(broker) -> None:
    host_token_shape = "dhh_" + "x" * 43  # a host token is no login token
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        bearer("dhu_not-a-real-token"),
        bearer("garbage"),
        bearer(host_token_shape),
    ):
        assert_refused_as_unauthorized(broker.http.get("/tickets", headers=headers))


def assert_refused_as_unauthorized(response: httpx.Response, words: str = "") -> None:
    """A 401 in the API's error shape that tells the client to use a bearer token."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["error"] == "unauthorized" and words in body["message"]


def test_an_expired_token_is_refused_and_only_that_one(broker) -> None:
    token, other = broker.login(), broker.login()
    assert broker.http.get("/auth/me", headers=bearer(token)).status_code == 200
    # Move this token's expiry into the past in the broker's real database.
    changed = broker.sql(
        "UPDATE access_tokens SET expires_at = '2000-01-01 00:00:00.000000' WHERE token_hash = ? RETURNING id",
        hash_token(token),
    )
    assert len(changed) == 1
    assert_refused_as_unauthorized(broker.http.get("/auth/me", headers=bearer(token)), "expired")
    assert_refused_as_unauthorized(broker.http.get("/tickets", headers=bearer(token)))
    assert broker.http.get("/auth/me", headers=bearer(other)).status_code == 200


def test_logout_revokes_the_token_and_only_that_one(broker) -> None:
    token, other = broker.login(), broker.login()
    assert broker.http.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert_refused_as_unauthorized(broker.http.get("/auth/me", headers=bearer(token)), "revoked")
    assert_refused_as_unauthorized(broker.http.post("/auth/logout", headers=bearer(token)))
    assert broker.http.get("/auth/me", headers=bearer(other)).status_code == 200
    revoked = broker.sql("SELECT revoked_at FROM access_tokens WHERE token_hash = ?", hash_token(token))
    assert revoked[0][0] is not None
    assert broker.sql("SELECT count(*) FROM audit_events WHERE kind = 'auth.logout'")[0][0] >= 1


def test_tokens_are_stored_only_as_hashes(broker) -> None:
    token = broker.login()
    stored = broker.sql("SELECT token_hash FROM access_tokens")
    assert (hash_token(token),) in stored
    assert token not in str(stored) + str(broker.sql("SELECT data FROM audit_events"))


def test_password_change_checks_the_current_password_and_the_policy(start_broker, broker_db) -> None:
    broker = start_broker(**broker_db.env())
    headers, elsewhere = bearer(broker.login()), bearer(broker.login())
    url = "/auth/password"
    bad_current = broker.http.post(url, json={"current_password": "x", "new_password": "a-long-new-password"}, headers=headers)
    assert bad_current.status_code == 403
    too_short = broker.http.post(url, json={"current_password": broker.admin_password, "new_password": "short"}, headers=headers)
    assert too_short.status_code == 422 and too_short.json()["error"] == "weak_password"
    assert "at least 12 characters" in too_short.json()["message"]
    ok = broker.http.post(url, json={"current_password": broker.admin_password, "new_password": "a-long-new-password"}, headers=headers)
    assert ok.status_code == 204
    login = broker.http.post("/auth/login", json={"username": "admin", "password": "a-long-new-password"})
    assert login.status_code == 200 and login.json()["password_change_required"] is False
    # The token that changed the password keeps working; the account's other tokens do not.
    assert broker.http.get("/auth/me", headers=headers).status_code == 200
    assert broker.http.get("/auth/me", headers=elsewhere).status_code == 401
