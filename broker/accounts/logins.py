"""Accounts: the first admin, and who a login token belongs to."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from broker.accounts.passwords import generate_password, hash_password
from broker.accounts.tokens import USER_TOKEN_PREFIX, hash_token
from broker.audit import events as audit
from broker.clock import utcnow
from broker.refusals import Forbidden
from broker.storage.models import AccessToken, Role, User

FIRST_ADMIN = "admin"
ADMIN_ROLE = "admin"
"""The built-in role that holds every permission; at least one enabled account always has it."""


def ensure_first_admin(db: Session) -> str | None:
    """Create the ``admin`` account if there is no account at all.

    Returns its generated password (to be shown once, never logged), or None
    when accounts already exist.
    """
    if db.scalar(select(func.count()).select_from(User)):
        return None
    password = generate_password()
    admin_role = db.scalars(select(Role).where(Role.name == ADMIN_ROLE)).one()
    db.add(
        User(
            username=FIRST_ADMIN,
            display_name="Administrator",
            password_hash=hash_password(password),
            must_change_password=True,
            created_at=utcnow(),
            roles=[admin_role],
        )
    )
    audit.record(db, "account.created", actor=audit.BROKER, username=FIRST_ADMIN, roles=[ADMIN_ROLE])
    return password


def user_for_token(db: Session, token: str) -> tuple[User, AccessToken] | None:
    """The user a login token belongs to, if it is valid now."""
    if not token.startswith(USER_TOKEN_PREFIX):
        return None
    row = db.scalars(
        select(AccessToken)
        .where(AccessToken.token_hash == hash_token(token))
        .options(selectinload(AccessToken.user))
    ).one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow() or row.user.disabled_at is not None:
        return None
    return row.user, row


def needs_totp_enrolment(user: User) -> bool:
    """A role of ``user`` requires TOTP and they have not confirmed an enrolment."""
    return user.totp_enabled_at is None and any(role.require_totp for role in user.roles)


def totp_enrollment_required() -> Forbidden:
    """The refusal of every request but enrolling, while :func:`needs_totp_enrolment`."""
    return Forbidden(
        "totp_enrollment_required",
        "your role requires two-factor sign-in: run 'deskhand-console totp enroll' "
        "(POST /auth/totp/enroll, then /auth/totp/confirm) before anything else",
    )


def password_change_required() -> Forbidden:
    """The refusal of every request but changing the password, while ``must_change_password``."""
    return Forbidden(
        "password_change_required",
        "your password was set by someone else (a first password or a reset): choose your own before anything "
        "else: run 'deskhand-console passwd' (POST /auth/password), or in the browser console open Account",
    )


def unfinished_setup(user: User) -> Forbidden | None:
    """The refusal for what ``user`` must do before anything else (change a password someone else
    set, then enrol in TOTP if a role requires it), or None when the account is ready."""
    if user.must_change_password:
        return password_change_required()
    if needs_totp_enrolment(user):
        return totp_enrollment_required()
    return None


def revoke_tokens(db: Session, user: User, *, keep: AccessToken | None = None) -> int:
    """Revoke every live token of ``user`` but ``keep``; returns how many."""
    now = utcnow()
    revoked = 0
    for token in db.scalars(select(AccessToken).where(AccessToken.user_id == user.id, AccessToken.revoked_at.is_(None))):
        if keep is None or token.id != keep.id:
            token.revoked_at = now
            revoked += 1
    return revoked
