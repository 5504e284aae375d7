"""A password someone else set (the first admin's, a new account's, a reset) must be changed before anything else.

Every route's answer to such an account is in ``test_authorization_matrix.py``; here
the whole way through for the first admin, as a new installation has it.
"""

from __future__ import annotations

from tests.support.accounts import require_password_change
from tests.support.api import bearer
from tests.support.console import console_runner

NEW_PASSWORD = "Harbour lights passphrase 61"
TICKET = {"subject": "Printer offline", "requester_name": "Ann", "requester_email": "ann@example.com"}


def test_the_first_admin_changes_the_generated_password_before_anything_else_works(broker) -> None:
    require_password_change(broker, "admin")  # as the broker created it (the harness spares other tests this)
    signed_in = broker.http.post("/auth/login", json={"username": "admin", "password": broker.admin_password})
    assert signed_in.status_code == 200 and signed_in.json()["password_change_required"] is True
    headers = bearer(signed_in.json()["access_token"])

    refused = broker.http.post("/tickets", json=TICKET, headers=headers)
    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert body["error"] == "password_change_required"
    assert "deskhand-console passwd" in body["message"] and "/auth/password" in body["message"]
    assert broker.sql("SELECT count(*) FROM tickets")[0][0] == 0
    assert broker.http.get("/users", headers=headers).json()["error"] == "password_change_required"

    # What it needs: who it is, whether it is signed in (and must change), the change itself.
    assert broker.http.get("/auth/me", headers=headers).json()["username"] == "admin"
    state = broker.http.get("/auth/session", headers=headers).json()
    assert state["signed_in"] and state["password_change_required"] is True
    changed = broker.http.post("/auth/password", headers=headers,
                               json={"current_password": broker.admin_password, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    broker.admin_password = NEW_PASSWORD

    assert broker.http.post("/tickets", json=TICKET, headers=headers).status_code == 201
    assert broker.http.get("/auth/session", headers=headers).json()["password_change_required"] is False


def test_the_console_says_to_change_it_and_passwd_does(broker, tmp_path) -> None:
    require_password_change(broker, "admin")
    run = console_runner(broker.base_url, tmp_path / "c.json")
    signed_in = run("login", "-u", "admin", "--password-stdin", stdin=broker.admin_password + "\n")
    assert signed_in.returncode == 0 and "must be changed: run 'deskhand-console passwd'" in signed_in.stderr
    refused = run("ticket", "list")
    assert refused.returncode == 1 and "deskhand-console passwd" in refused.stderr, refused.stderr
    changed = run("passwd", "--stdin", stdin=f"{broker.admin_password}\n{NEW_PASSWORD}-2\n")
    assert changed.returncode == 0, changed.stderr
    broker.admin_password = f"{NEW_PASSWORD}-2"
    assert run("ticket", "list").returncode == 0


def test_signing_out_works_with_a_password_still_to_change(broker) -> None:
    require_password_change(broker, "admin")
    token = broker.login()
    assert broker.http.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert broker.http.get("/auth/me", headers=bearer(token)).status_code == 401
