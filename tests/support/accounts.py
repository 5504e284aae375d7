"""Accounts for tests, written straight into a test broker's database, and TOTP codes for them."""

from __future__ import annotations

import time

import pyotp

from broker.accounts.passwords import hash_password
from tests.support.broker import BrokerProcess

PASSWORD = "Correct horse, battery 9"
"""The password :func:`make_user` gives unless told otherwise (it passes the password policy)."""


def make_user(broker: BrokerProcess, username: str, *, role: str = "technician", password: str = PASSWORD) -> None:
    """An enabled account with one role, independent of the admin API."""
    broker.sql(
        "INSERT INTO users (username, display_name, password_hash, must_change_password, created_at, failed_logins)"
        " VALUES (?, ?, ?, FALSE, '2025-01-01 00:00:00.000000', 0)",
        username, username.title(), hash_password(password),
    )
    broker.sql(
        "INSERT INTO user_roles (user_id, role_id) SELECT users.id, roles.id FROM users, roles"
        " WHERE users.username = ? AND roles.name = ?",
        username, role,
    )


OWN_PASSWORD = "Chosen by myself, passphrase 3"
"""What :func:`choose_own_password` changes to."""


def choose_own_password(broker: BrokerProcess, username: str, given: str) -> str:
    """Sign in with a password someone else set (an admin's ``POST /users``) and change it, as the
    broker requires before anything else; returns the new one, :data:`OWN_PASSWORD`."""
    signed_in = broker.http.post("/auth/login", json={"username": username, "password": given})
    signed_in.raise_for_status()
    changed = broker.http.post("/auth/password", json={"current_password": given, "new_password": OWN_PASSWORD},
                               headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"})
    assert changed.status_code == 204, changed.text
    return OWN_PASSWORD


def require_password_change(broker: BrokerProcess, username: str = "admin") -> None:
    """Mark ``username``'s password as set by someone else, as the broker does for a first or
    reset password (the test broker's first admin is spared it: see :mod:`tests.support.broker`)."""
    broker.sql("UPDATE users SET must_change_password = TRUE WHERE username = ?", username)


def code_at(secret: str, offset: float = 0) -> str:
    """The TOTP code of ``secret`` ``offset`` seconds from now (+30: the next step's, which brokers accept)."""
    return pyotp.TOTP(secret).at(time.time() + offset)
