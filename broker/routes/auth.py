"""Signing in and out, changing one's password, and two-factor sign-in (TOTP).

The routes are sync on purpose: argon2 then runs in the threadpool, so one
account's slow (or failing) sign-in never holds up another's.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated, NoReturn

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from broker.accounts import lockout, second_factor, totp
from broker.accounts.access import PublicAccess
from broker.accounts.browser_session import clear_session_cookie, csrf_token_for, request_token, set_session_cookie
from broker.accounts.logins import needs_totp_enrolment, revoke_tokens, user_for_token
from broker.accounts.password_policy import check_password
from broker.accounts.passwords import hash_password, verify_password
from broker.accounts.tokens import USER_TOKEN_PREFIX, new_token
from broker.audit import events as audit
from broker.clock import utcnow
from broker.deps import DB, CurrentUser, Source, State, current_token
from broker.refusals import Conflict, Forbidden, Invalid, RateLimited, Refusal, Unauthenticated, Unreadable
from broker.serializers import user_info
from broker.state import BrokerState
from broker.storage.models import AccessToken, User
from broker.throttling.rate_gate import SIGN_INS
from protocol.api import (
    LoginRequest,
    LoginResponse,
    PasswordChange,
    RecoveryCodes,
    SignInState,
    TotpConfirm,
    TotpDisable,
    TotpEnrollment,
    UserInfo,
)

router = APIRouter(prefix="/auth", tags=["auth"])

_LOGIN_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Wrong credentials (`bad_credentials`), a TOTP code is needed (`totp_required`) "
                         "or wrong (`totp_invalid`)"},
    403: {"description": "The account is disabled (`account_disabled`)"},
    429: {"description": "The account is locked (`account_locked`) or this address sent too many "
                         "failed sign-ins (`rate_limited`); see Retry-After"},
}


@router.post("/login", response_model=LoginResponse, dependencies=[PublicAccess], responses=_LOGIN_RESPONSES,
             summary="Exchange a username, password and (if enabled) TOTP code for a bearer token")
def login(
    body: LoginRequest, db: DB, state: State, source: Source, request: Request, response: Response
) -> LoginResponse:
    attempt = _Attempt(db, state, source, body.username)
    user = db.scalars(select(User).where(User.username == body.username)).unique().one_or_none()
    now = utcnow()
    if user is not None:
        attempt.refuse_while_locked(user, now)
    # Unknown users are checked against a dummy hash: the same argon2 cost, so timing
    # does not tell which accounts exist.
    if not verify_password(user.password_hash if user else None, body.password):
        attempt.fail(user, "password", Unauthenticated("bad_credentials", "wrong username or password"))
    assert user is not None
    if user.disabled_at is not None:
        attempt.fail(user, "disabled", Forbidden("account_disabled", "this account is disabled: ask an admin"))
    if user.totp_enabled_at is not None:
        code = body.totp_code or body.recovery_code
        if code is None:
            attempt.forgive()  # the password was right; asking for the code is no failure
            raise Unauthenticated(
                "totp_required", "this account uses two-factor sign-in: send the 6-digit code from your authenticator "
                "app as totp_code, or one of your recovery codes as recovery_code",
            )
        accepted, left = second_factor.check_second_factor(db, user, code, now)
        if not accepted:
            attempt.fail(user, "totp", Unauthenticated(
                "totp_invalid", "the code is wrong, expired or already used: wait for the next code and try again",
            ))
        if left is not None:
            audit.record(db, "auth.recovery_code_used", actor=audit.user_actor(user), source=source, remaining=left)
    attempt.succeed(user)
    token, token_hash = new_token(USER_TOKEN_PREFIX)
    row = AccessToken(
        user=user,
        token_hash=token_hash,
        created_at=now,
        expires_at=now + timedelta(seconds=state.settings.token_ttl_seconds),
    )
    db.add(row)
    audit.record(db, "auth.login", actor=audit.user_actor(user), source=source, cookie=body.cookie)
    if body.cookie:
        set_session_cookie(response, token, row.expires_at, secure=request.url.scheme == "https")
    return LoginResponse(
        access_token=None if body.cookie else token,
        csrf_token=csrf_token_for(token) if body.cookie else None,
        expires_at=row.expires_at,
        user=user_info(user),
        password_change_required=user.must_change_password,
        totp_enrollment_required=needs_totp_enrolment(user),
    )


class _Attempt:
    """One sign-in attempt: its place in the per-source limit, and what failing it does.

    The attempt counts as a failure of its source from the start (so concurrent
    guesses see each other) and is forgiven if it succeeds, as with support codes.
    """

    def __init__(self, db: Session, state: BrokerState, source: str | None, username: str) -> None:
        self.db, self.state, self.source, self.username = db, state, source, username
        self.key = source or "unknown"
        self.at = time.monotonic()
        SIGN_INS.count(state.login_failures, self.key, self.at)

    def refuse_while_locked(self, user: User, now: datetime) -> None:
        """429 ``account_locked`` if the account is locked, without checking the password."""
        wait = lockout.retry_after(user.locked_until, now)
        if wait is None:
            return
        assert user.locked_until is not None
        audit.record_refusal(self.db, "auth.login_failed", actor=audit.ANONYMOUS, source=self.source,
                             username=self.username, reason="locked")
        raise RateLimited(
            "account_locked", f"this account is locked after too many failed sign-ins: try again in {wait} s "
            f"(at {user.locked_until:%H:%M:%S} UTC)",
            retry_after=wait,
        )

    def fail(self, user: User | None, reason: str, refusal: Refusal) -> NoReturn:
        """Count the failure against the account (locking it when due), audit it, and refuse."""
        if user is not None:
            self._count_against(user)
        audit.record(self.db, "auth.login_failed", actor=audit.ANONYMOUS, source=self.source,
                     username=self.username, reason=reason)
        SIGN_INS.audit_block(self.db, self.source, self.state.login_failures.retry_after(self.key, self.at))
        # Committed now: the refusal rolls the request's transaction back.
        self.db.commit()
        raise refusal

    def _count_against(self, user: User) -> None:
        now = utcnow()
        # One statement: concurrent failures each get their own count.
        failures = self.db.execute(
            update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins).execution_options(synchronize_session=False)
        ).scalar_one()
        policy = self.state.settings.lockout_policy
        until = policy.locked_until(failures, now)
        if until is None:
            return
        self.db.execute(
            update(User).where(User.id == user.id, or_(User.locked_until.is_(None), User.locked_until < until))
            .values(locked_until=until).execution_options(synchronize_session=False)
        )
        audit.record(self.db, "auth.locked", actor=audit.BROKER, source=self.source, username=user.username,
                     failures=failures, seconds=policy.lock_seconds(failures), until=until.isoformat())

    def forgive(self) -> None:
        self.state.login_failures.forgive(self.key, self.at)

    def succeed(self, user: User) -> None:
        """A complete sign-in: the source is forgiven and the account's count starts again."""
        self.forgive()
        if user.failed_logins or user.locked_until is not None:
            user.failed_logins = 0
            user.locked_until = None


@router.post("/logout", status_code=204, summary="Revoke the token used for this request")
def logout(
    db: DB, source: Source, state: State, token: Annotated[tuple[User, AccessToken], Depends(current_token)],
    request: Request, response: Response,
) -> None:
    user, row = token
    row.revoked_at = utcnow()
    clear_session_cookie(response, secure=request.url.scheme == "https")
    audit.record(db, "auth.logout", actor=audit.user_actor(user), source=source)
    state.access_withdrawn(db)


@router.get("/session", response_model=SignInState, dependencies=[PublicAccess],
            summary="Whether this browser (or token) is signed in; never an error, so a page can ask first")
def sign_in_state(db: DB, request: Request) -> SignInState:
    token = request_token(request)
    found = user_for_token(db, token) if token else None
    if found is None:
        return SignInState(signed_in=False)
    user = found[0]
    return SignInState(signed_in=True, user=user_info(user), password_change_required=user.must_change_password)


@router.get("/me", response_model=UserInfo, summary="Who the token belongs to")
def me(user: CurrentUser) -> UserInfo:
    return user_info(user)


@router.post("/password", status_code=204, summary="Change your own password",
             responses={403: {"description": "The current password is wrong"},
                        422: {"description": "The new password breaks the policy (`weak_password`)"}})
def change_password(
    body: PasswordChange, db: DB, source: Source, state: State,
    token: Annotated[tuple[User, AccessToken], Depends(current_token)],
) -> None:
    user, current = token
    if not verify_password(user.password_hash, body.current_password):
        raise Forbidden("bad_credentials", "the current password is wrong")
    if body.new_password == body.current_password:
        raise Invalid("invalid_request", "the new password must differ from the current one")
    problem = check_password(body.new_password, user.username)
    if problem is not None:
        raise Invalid("weak_password", problem)
    user.password_hash = hash_password(body.new_password)
    user.must_change_password = False
    user.password_changed_at = utcnow()
    # Whoever else holds a token of this account (perhaps the reason for the change) is out.
    others = revoke_tokens(db, user, keep=current)
    audit.record(db, "auth.password_changed", actor=audit.user_actor(user), source=source, tokens_revoked=others)
    state.access_withdrawn(db)


# --- TOTP ------------------------------------------------------------------------------


def _totp_off(user: User) -> None:
    if user.totp_enabled_at is not None:
        raise Conflict(
            "totp_enabled", "two-factor sign-in is already on: turn it off first (POST /auth/totp/disable) to use a new device",
        )


@router.post("/totp/enroll", response_model=TotpEnrollment,
             summary="Start TOTP enrolment: a new secret, in force once confirmed",
             responses={409: {"description": "TOTP is already enabled (`totp_enabled`)"}})
def enroll_totp(user: CurrentUser) -> TotpEnrollment:
    _totp_off(user)
    # A new secret each time: an enrolment abandoned half-way (a secret seen on a shared
    # screen, say) is simply replaced.
    user.totp_secret = totp.new_secret()
    return TotpEnrollment(secret=user.totp_secret, provisioning_uri=totp.provisioning_uri(user.totp_secret, user.username))


@router.post("/totp/confirm", response_model=RecoveryCodes,
             summary="Turn TOTP on with a code from the new secret; returns recovery codes, shown once",
             responses={400: {"description": "Wrong code (`totp_invalid`)"},
                        409: {"description": "Already enabled, or no enrolment started"}})
def confirm_totp(body: TotpConfirm, db: DB, user: CurrentUser, source: Source) -> RecoveryCodes:
    _totp_off(user)
    if user.totp_secret is None:
        raise Conflict("totp_not_enrolling", "start with POST /auth/totp/enroll, then confirm a code")
    now = utcnow()
    if not second_factor.accept_totp(db, user, body.code, now):
        raise Unreadable(
            "totp_invalid", "the code does not match: check that your device's clock is right and send the code now shown",
        )
    user.totp_enabled_at = now
    codes = second_factor.replace_recovery_codes(db, user)
    audit.record(db, "auth.totp_enrolled", actor=audit.user_actor(user), source=source, recovery_codes=len(codes))
    return RecoveryCodes(recovery_codes=codes)


@router.post("/totp/disable", status_code=204,
             summary="Turn TOTP off, with your password and a current code or a recovery code",
             responses={403: {"description": "Wrong password (`bad_credentials`) or code (`totp_invalid`)"},
                        409: {"description": "TOTP is not enabled (`totp_not_enabled`)"}})
def disable_totp(body: TotpDisable, db: DB, user: CurrentUser, source: Source) -> None:
    if user.totp_enabled_at is None:
        raise Conflict("totp_not_enabled", "two-factor sign-in is not on for this account")
    if not verify_password(user.password_hash, body.password):
        raise Forbidden("bad_credentials", "the password is wrong")
    accepted, left = second_factor.check_second_factor(db, user, body.code, utcnow())
    if not accepted:
        raise Forbidden("totp_invalid", "the code is wrong, expired or already used")
    if left is not None:
        audit.record(db, "auth.recovery_code_used", actor=audit.user_actor(user), source=source, remaining=left)
    second_factor.turn_off(db, user)
    audit.record(db, "auth.totp_disabled", actor=audit.user_actor(user), source=source)
