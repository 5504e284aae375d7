"""An account's second factor in the database: TOTP steps used, recovery codes spent.

Each "use once" rule is a conditional UPDATE checked by its row count, so two
requests racing with the same code cannot both succeed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from broker.accounts import totp
from broker.storage.db import changed_rows
from broker.storage.models import RecoveryCode, User
from protocol.totp import is_totp_code


def accept_totp(db: Session, user: User, code: str, now: datetime) -> bool:
    """True if ``code`` is valid now for the user's secret and was never accepted before."""
    if user.totp_secret is None:
        return False
    step = totp.accepted_step(user.totp_secret, code, now, user.totp_last_step)
    if step is None:
        return False
    claimed = changed_rows(
        db,
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if claimed != 1:
        return False  # a concurrent request took this step (or a later one) first
    user.totp_last_step = step
    return True


def use_recovery_code(db: Session, user: User, code: str, now: datetime) -> int | None:
    """Spend ``code``: the number of unused codes left afterwards, or None if it is not an unused code."""
    unused = {row.code_hash: row.id for row in _unused(db, user)}
    found = totp.matching_hash(code, list(unused))
    if found is None:
        return None
    spent = changed_rows(
        db,
        update(RecoveryCode)
        .where(RecoveryCode.id == unused[found], RecoveryCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return len(unused) - 1 if spent == 1 else None


def check_second_factor(db: Session, user: User, code: str, now: datetime) -> tuple[bool, int | None]:
    """A normalized TOTP or recovery code: (accepted, recovery codes left if one was spent)."""
    if is_totp_code(code):
        return accept_totp(db, user, code, now), None
    left = use_recovery_code(db, user, code, now)
    return left is not None, left


def replace_recovery_codes(db: Session, user: User) -> list[str]:
    """Forget the user's recovery codes and store the hashes of fresh ones; returns them, to show once."""
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = totp.new_recovery_codes()
    db.add_all(RecoveryCode(user_id=user.id, code_hash=totp.recovery_code_hash(code)) for code in codes)
    return [totp.shown(code) for code in codes]


def turn_off(db: Session, user: User) -> None:
    """Remove the user's TOTP secret and recovery codes."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def _unused(db: Session, user: User) -> list[RecoveryCode]:
    return list(db.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))))
