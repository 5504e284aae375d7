"""Admins manage accounts, roles and teams, through the API and ``deskhand-broker``; bad input changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.api import bearer

STRONG = "Admin-test passphrase 3"


def call(broker, method: str, path: str, token: str | None = None, **body: object):
    return broker.http.request(method, path, headers=bearer(token or broker.login()), json=body or None)


def test_accounts_are_created_changed_disabled_and_reset_with_their_tokens_following(broker) -> None:
    made = call(broker, "POST", "/users", username="ann", display_name="Ann", roles=["technician"])
    assert made.status_code == 201, made.text
    generated = made.json()["password"]
    assert len(generated) >= 16 and made.json()["user"]["roles"] == ["technician"]
    login = broker.http.post("/auth/login", json={"username": "ann", "password": generated}).json()
    assert login["password_change_required"] is True
    token = login["access_token"]
    # A password someone else chose: nothing but changing it until it is changed.
    for path in ("/tickets", "/users"):
        held_back = broker.http.get(path, headers=bearer(token))
        assert held_back.status_code == 403 and held_back.json()["error"] == "password_change_required", held_back.text
    assert broker.http.get("/auth/me", headers=bearer(token)).json()["username"] == "ann"

    assert call(broker, "PATCH", "/users/ann", disabled=True).json()["disabled"] is True
    assert broker.http.get("/tickets", headers=bearer(token)).status_code == 401
    refused = broker.http.post("/auth/login", json={"username": "ann", "password": generated})
    assert refused.status_code in (401, 403) and "disabled" in refused.text, refused.text
    assert call(broker, "PATCH", "/users/ann", disabled=False).json()["disabled"] is False
    assert broker.http.get("/tickets", headers=bearer(token)).status_code == 401, "enabling must not revive old tokens"

    reset = call(broker, "POST", "/users/ann/password-reset")
    assert reset.status_code == 200
    assert broker.http.post("/auth/login", json={"username": "ann", "password": reset.json()["password"]}).status_code == 200
    kinds = {k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE data LIKE '%\"ann\"%'")}
    assert {"account.created", "account.changed", "account.password_reset"} <= kinds
    assert all(generated not in str(d) for (d,) in broker.sql("SELECT data FROM audit_events"))


def test_bad_account_input_is_refused_with_the_reason_and_stores_nothing(broker) -> None:
    before = broker.sql("SELECT count(*) FROM users")[0][0]
    cases = [
        ({"username": "Bad Name!", "display_name": "x"}, 422, "username"),
        ({"username": "bob", "display_name": "Bob", "password": "short"}, 422, "weak_password"),
        ({"username": "bob", "display_name": "Bob", "password": "bob-Passphrase-123456"}, 422, "weak_password"),
        ({"username": "bob", "display_name": "Bob", "roles": ["wizard"]}, 422, "no role 'wizard'"),
        ({"username": "bob", "display_name": "Bob", "teams": ["ghosts"]}, 422, "no team 'ghosts'"),
        ({"username": "admin", "display_name": "Again"}, 409, "username_taken"),
        ({"username": "bob", "display_name": "Bob", "is_admin": True}, 422, "is_admin"),
    ]
    for body, status, words in cases:
        response = call(broker, "POST", "/users", **body)
        assert response.status_code == status and words in response.text, (body, response.text)
    assert broker.sql("SELECT count(*) FROM users")[0][0] == before
    for path in ("/users/Bad%20Name", "/roles/..", "/teams/" + "x" * 80):
        assert call(broker, "GET", path).status_code in (404, 422), path  # ".." never reaches a lookup
    assert call(broker, "GET", "/users/Bad%20Name").json()["error"] == "invalid_request"


def test_the_last_enabled_admin_cannot_be_disabled_demoted_or_deleted(broker) -> None:
    others = [u for u in call(broker, "GET", "/users").json() if "admin" in u["roles"] and u["username"] != "admin"]
    for user in others:  # leave "admin" as the only one
        call(broker, "PATCH", f"/users/{user['username']}", roles=["technician"])
    for method, path, body in (
        ("PATCH", "/users/admin", {"disabled": True}),
        ("PATCH", "/users/admin", {"roles": ["technician"]}),
        ("DELETE", "/users/admin", {}),
    ):
        response = call(broker, method, path, **body)
        assert response.status_code == 409 and response.json()["error"] == "last_admin", response.text
    assert call(broker, "GET", "/users/admin").json()["roles"] == ["admin"]


def test_roles_and_teams_validate_their_permissions_and_protect_the_built_in_ones(broker) -> None:
    assert call(broker, "POST", "/roles", name="wizards", permissions=["magic"]).status_code == 422
    assert "unknown permission 'magic'" in call(broker, "POST", "/roles", name="wizards", permissions=["magic"]).text
    assert call(broker, "DELETE", "/roles/technician").json()["error"] == "builtin_role"
    assert call(broker, "PATCH", "/roles/admin", permissions=["view"]).json()["error"] == "builtin_role"
    made = call(broker, "POST", "/roles", name="night-shift", permissions=["view", "session.start", "view"])
    assert made.status_code == 201 and made.json()["permissions"] == ["session.start", "view"]
    assert call(broker, "POST", "/teams", name="frontline", policy={"denied": ["telepathy"]}).status_code == 422
    assert call(broker, "POST", "/teams", name="frontline", members=["nobody-at-all"]).status_code == 422
    team = call(broker, "POST", "/teams", name="frontline", policy={"denied": ["files.send"]}, members=["admin"])
    assert team.status_code == 201 and team.json()["members"] == ["admin"]
    assert call(broker, "DELETE", "/roles/night-shift").status_code == 204
    assert call(broker, "DELETE", "/teams/frontline").status_code == 204
    kinds = {k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE kind LIKE 'role.%' OR kind LIKE 'team.%'")}
    assert {"role.created", "role.deleted", "team.created", "team.deleted"} <= kinds


def broker_cli(broker, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKHAND_")}
    return subprocess.run([sys.executable, "-m", "broker.cli", *args, "--data-dir", str(broker.data_dir)],
                          capture_output=True, text=True, input=stdin, env=env, timeout=60)


def test_the_broker_cli_manages_accounts_on_a_running_broker(broker) -> None:
    made = broker_cli(broker, "users", "create", "carl", "--display-name", "Carl", "--roles", "auditor")
    assert made.returncode == 0, made.stderr
    password = made.stdout.rsplit(": ", 1)[1].strip()
    token = broker.http.post("/auth/login", json={"username": "carl", "password": password}).json()["access_token"]
    assert broker.http.get("/audit/sessions", headers=bearer(token)).status_code == 403  # a generated password
    changed = broker.http.post("/auth/password", headers=bearer(token),
                               json={"current_password": password, "new_password": "An auditor's own passphrase 5"})
    assert changed.status_code == 204, changed.text
    assert broker.http.get("/audit/sessions", headers=bearer(token)).status_code == 200
    assert broker_cli(broker, "users", "disable", "carl").returncode == 0
    assert broker.http.get("/audit/sessions", headers=bearer(token)).status_code == 401
    last = broker_cli(broker, "users", "disable", "admin")
    assert last.returncode == 1 and "last enabled admin" in last.stderr
    bad = broker_cli(broker, "roles", "create", "bad-role", "--permissions", "view,flying")
    assert bad.returncode == 2 and "unknown permission 'flying'" in bad.stderr
    bad_team = broker_cli(broker, "teams", "create", "night", "--deny", "telepathy")
    assert bad_team.returncode == 2 and "telepathy" in bad_team.stderr
    assert broker.sql("SELECT count(*) FROM teams WHERE name = 'night'")[0][0] == 0
    listed = broker_cli(broker, "roles", "list", "--json")
    assert {r["name"] for r in json.loads(listed.stdout)} >= {"admin", "technician", "auditor"}
    actors = {a for (a,) in broker.sql("SELECT actor FROM audit_events WHERE kind = 'account.created' AND data LIKE '%carl%'")}
    assert len(actors) == 1 and next(iter(actors)).startswith("cli:")
