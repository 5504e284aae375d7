"""Accounts: the first admin."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .clock import utcnow
from .models import User
from .passwords import generate_password, hash_password

FIRST_ADMIN = "admin"


def ensure_first_admin(db: Session) -> str | None:
    """Create the ``admin`` account if there is no account at all.

    Returns its generated password (to be shown once, never logged), or None
    when accounts already exist.
    """
    if db.scalar(select(func.count()).select_from(User)):
        return None
    password = generate_password()
    db.add(
        User(
            username=FIRST_ADMIN,
            display_name="Administrator",
            password_hash=hash_password(password),
            is_admin=True,
            must_change_password=True,
            created_at=utcnow(),
        )
    )
    audit.record(db, "account.created", actor=audit.BROKER, username=FIRST_ADMIN, is_admin=True)
    return password
