"""Signing in and out."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select

from protocol.api import LoginRequest, LoginResponse, PasswordChange, UserInfo

from .. import audit
from ..access import PublicAccess
from ..clock import utcnow
from ..deps import DB, CurrentUser, Source, State, current_token
from ..errors import ApiError
from ..models import AccessToken, User
from ..passwords import hash_password, verify_password
from ..serializers import user_info
from ..tokens import USER_TOKEN_PREFIX, new_token

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse, dependencies=[PublicAccess],
             summary="Exchange a username and password for a bearer token")
def login(body: LoginRequest, db: DB, state: State, source: Source) -> LoginResponse:
    user = db.scalars(select(User).where(User.username == body.username)).one_or_none()
    if not verify_password(user.password_hash if user else None, body.password):
        audit.record_refusal(db, "auth.login_failed", actor=audit.ANONYMOUS, source=source, username=body.username)
        raise ApiError(401, "bad_credentials", "wrong username or password")
    assert user is not None
    token, token_hash = new_token(USER_TOKEN_PREFIX)
    now = utcnow()
    row = AccessToken(
        user=user,
        token_hash=token_hash,
        created_at=now,
        expires_at=now + timedelta(seconds=state.settings.token_ttl_seconds),
    )
    db.add(row)
    audit.record(db, "auth.login", actor=audit.user_actor(user), source=source)
    return LoginResponse(
        access_token=token,
        expires_at=row.expires_at,
        user=user_info(user),
        password_change_required=user.must_change_password,
    )


@router.post("/logout", status_code=204, summary="Revoke the token used for this request")
def logout(
    db: DB, source: Source, state: State, token: Annotated[tuple[User, AccessToken], Depends(current_token)]
) -> None:
    user, row = token
    row.revoked_at = utcnow()
    state.peers.forget()
    audit.record(db, "auth.logout", actor=audit.user_actor(user), source=source)


@router.get("/me", response_model=UserInfo, summary="Who the token belongs to")
def me(user: CurrentUser) -> UserInfo:
    return user_info(user)


@router.post("/password", status_code=204, summary="Change your own password")
def change_password(body: PasswordChange, db: DB, user: CurrentUser, source: Source) -> None:
    if not verify_password(user.password_hash, body.current_password):
        raise ApiError(403, "bad_credentials", "the current password is wrong")
    if body.new_password == body.current_password:
        raise ApiError(422, "invalid_request", "the new password must differ from the current one")
    user.password_hash = hash_password(body.new_password)
    user.must_change_password = False
    audit.record(db, "auth.password_changed", actor=audit.user_actor(user), source=source)
